package pii

import (
	"context"
	"errors"
	"fmt"
)

// Errors from ScanContext. Callers fail closed on any error: the text is
// not forwarded. The errors never contain any part of the text.
var (
	// ErrTooLarge means the text is longer than the scanner's MaxBytes.
	ErrTooLarge = errors.New("text too large to scan")
	// ErrScanFailed means the scanner failed internally (a recovered panic).
	ErrScanFailed = errors.New("scanner failed")
)

// ScanContext is Scan that fails instead of returning a partial result: it
// returns an error wrapping ErrTooLarge for a text over the size limit, the
// context's error when ctx is done before or during the scan (checked every
// 64 KiB and between custom detectors), and ErrScanFailed if a detector
// panics. On error dst is returned as it was passed in.
func (s *Scanner) ScanContext(ctx context.Context, text string, dst []Finding) (out []Finding, err error) {
	base := len(dst)
	if limit := s.limit(); len(text) > limit {
		return dst, fmt.Errorf("pii scan: %w (%d bytes, limit %d)", ErrTooLarge, len(text), limit)
	}
	if err := ctx.Err(); err != nil {
		return dst, fmt.Errorf("pii scan: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			// The panic value may quote the text: drop it.
			out, err = dst[:base], fmt.Errorf("pii scan: %w", ErrScanFailed)
		}
	}()
	out, err = s.scan(ctx, text, dst)
	if err != nil {
		return dst[:base], fmt.Errorf("pii scan: %w", err)
	}
	return out, nil
}

// limit returns the size limit of ScanContext.
func (s *Scanner) limit() int {
	if s.maxBytes > 0 {
		return s.maxBytes
	}
	return DefaultMaxBytes
}
