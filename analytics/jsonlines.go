package analytics

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
)

// JSONLines is an Inserter that appends one JSON object per event and line
// to a file, for local runs and debugging. It does not fsync. It is safe
// for concurrent use.
//
// InsertDecisions writes decision-log events the same way; give the
// decision log a JSONLines of its own (a second file), since the lines of
// the two logs carry no field telling them apart.
type JSONLines struct {
	mu     sync.Mutex
	w      io.Writer
	closer io.Closer // nil for stdout, which JSONLines does not own
	name   string
	buf    bytes.Buffer
}

// OpenJSONLines opens path for appending, creating it if needed; "-" writes
// to standard output.
func OpenJSONLines(path string) (*JSONLines, error) {
	if path == "-" {
		return &JSONLines{w: os.Stdout, name: "stdout"}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open json lines: %w", err)
	}
	return &JSONLines{w: f, closer: f, name: path}, nil
}

// Insert appends events with one write, so lines from concurrent batches
// never interleave.
func (j *JSONLines) Insert(_ context.Context, events []Event) error {
	return writeLines(j, events, eventRequestID)
}

// InsertDecisions appends decisions with one write, like Insert.
// DecisionInserterFunc(j.InsertDecisions) is a DecisionInserter.
func (j *JSONLines) InsertDecisions(_ context.Context, decisions []DecisionEvent) error {
	return writeLines(j, decisions, decisionRequestID)
}

// writeLines encodes records into j's buffer and writes them with one write.
func writeLines[T any](j *JSONLines, records []T, requestID func(*T) string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.w == nil {
		return fmt.Errorf("json lines %s: %w", j.name, os.ErrClosed)
	}
	j.buf.Reset()
	enc := json.NewEncoder(&j.buf)
	for i := range records {
		if err := enc.Encode(&records[i]); err != nil {
			return fmt.Errorf("json lines %s: encode request %s: %w", j.name, requestID(&records[i]), err)
		}
	}
	if _, err := j.w.Write(j.buf.Bytes()); err != nil {
		return fmt.Errorf("json lines %s: write: %w", j.name, err)
	}
	return nil
}

// Close closes the file; later Inserts fail. Standard output stays open.
func (j *JSONLines) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.w == nil {
		return nil
	}
	j.w = nil
	if j.closer == nil {
		return nil
	}
	if err := j.closer.Close(); err != nil {
		return fmt.Errorf("close json lines %s: %w", j.name, err)
	}
	return nil
}
