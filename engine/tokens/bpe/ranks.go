package bpe

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/bits"
	"strconv"

	"github.com/pkoukk/tiktoken-go-loader/assets"
)

// noRank marks a byte sequence that is not a token.
const noRank = ^uint32(0)

// maxTokenLen bounds token length: slot stores it in 8 bits.
const maxTokenLen = 255

// ranks holds one vocabulary: token bytes → rank, which tiktoken also uses as
// the token ID. It is immutable once built.
//
// Lookups dominate byte-pair encoding, so tokens of one and two bytes sit in
// direct tables, and longer ones in an open-addressing hash table whose slots
// hold the first bytes of the token inline: most lookups, hits or misses,
// touch one cache line and never the token bytes.
type ranks struct {
	// single holds the ranks of the 256 single bytes.
	single [256]uint32
	// pair holds the rank of every two-byte sequence b0 b1 at b0<<8|b1, or
	// noRank.
	pair []uint32
	// slots is the hash table of tokens of three bytes or more, with
	// linear probing, at most half full; len(slots) is a power of two.
	slots []slot
	// shift turns a hash into a slot index: hash >> shift.
	shift uint
	// arena holds the bytes of all tokens; slots point into it.
	arena string
	// maxLen is the length of the longest token.
	maxLen int
	// size is the number of tokens.
	size int
}

// slot is one entry of ranks.slots: key is keyOf(token) and meta packs the
// rank (bits 0-31), the token length (32-39) and its offset in the arena
// (40-63). A zero meta marks an empty slot (no token is shorter than 3).
type slot struct {
	key  uint64
	meta uint64
}

// loadRanks parses a .tiktoken file ("<base64 bytes> <rank>" per line)
// embedded in tiktoken-go-loader.
func loadRanks(file string) (*ranks, error) {
	data, err := assets.Assets.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	type entry struct {
		start, end int
		rank       uint32
	}
	entries := make([]entry, 0, bytes.Count(data, []byte{'\n'})+1)
	arena := make([]byte, 0, len(data)*3/4)
	long := 0
	for line, rest := 1, data; len(rest) > 0; line++ {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if len(l) == 0 {
			continue
		}
		b64, num, ok := bytes.Cut(l, []byte{' '})
		if !ok {
			return nil, fmt.Errorf("parse %s line %d: no space", file, line)
		}
		rank, err := strconv.ParseUint(string(num), 10, 32)
		if err != nil || rank >= 1<<31 {
			return nil, fmt.Errorf("parse %s line %d: bad rank %q", file, line, num)
		}
		start := len(arena)
		arena = arena[:start+base64.StdEncoding.DecodedLen(len(b64))]
		m, err := base64.StdEncoding.Decode(arena[start:], b64)
		if err != nil || m == 0 || m > maxTokenLen {
			return nil, fmt.Errorf("parse %s line %d: bad token %q", file, line, b64)
		}
		arena = arena[:start+m]
		if m >= 3 {
			long++
		}
		entries = append(entries, entry{start, start + m, uint32(rank)})
	}
	if len(arena) >= 1<<24 {
		return nil, fmt.Errorf("parse %s: %d bytes of tokens, want < 16 MiB", file, len(arena))
	}

	size := 1 << bits.Len(uint(2*long)) // at most half full
	r := &ranks{
		pair:  make([]uint32, 1<<16),
		slots: make([]slot, size),
		shift: uint(64 - bits.TrailingZeros(uint(size))),
		arena: string(arena),
		size:  len(entries),
	}
	for i := range r.single {
		r.single[i] = noRank
	}
	for i := range r.pair {
		r.pair[i] = noRank
	}
	seen := make([]bool, len(entries))
	for _, e := range entries {
		tok := r.arena[e.start:e.end]
		if int(e.rank) >= len(seen) || seen[e.rank] {
			return nil, fmt.Errorf("parse %s: rank %d repeated or out of range", file, e.rank)
		}
		seen[e.rank] = true
		if r.lookup(tok) != noRank {
			return nil, fmt.Errorf("parse %s: token %q repeated", file, tok)
		}
		r.maxLen = max(r.maxLen, len(tok))
		switch len(tok) {
		case 1:
			r.single[tok[0]] = e.rank
		case 2:
			r.pair[int(tok[0])<<8|int(tok[1])] = e.rank
		default:
			key, h := keyOf(tok)
			i := h >> r.shift
			for r.slots[i].meta != 0 {
				i = (i + 1) & uint64(size-1)
			}
			r.slots[i] = slot{key, uint64(e.rank) | uint64(len(tok))<<32 | uint64(e.start)<<40}
		}
	}
	// Byte-pair encoding relies on every single byte being a token.
	for b, rank := range r.single {
		if rank == noRank {
			return nil, fmt.Errorf("parse %s: byte %#x is not a token", file, b)
		}
	}
	return r, nil
}

// lookup returns the rank of the token s, or noRank if s is not a token.
func (r *ranks) lookup(s string) uint32 {
	switch len(s) {
	case 0:
		return noRank
	case 1:
		return r.single[s[0]]
	case 2:
		return r.pair[int(s[0])<<8|int(s[1])]
	}
	if len(s) > r.maxLen {
		return noRank
	}
	key, h := keyOf(s)
	mask := uint64(len(r.slots) - 1)
	for i := h >> r.shift; ; i = (i + 1) & mask {
		sl := &r.slots[i]
		if sl.meta == 0 {
			return noRank
		}
		if sl.key != key || int(sl.meta>>32&0xff) != len(s) {
			continue
		}
		if len(s) <= 8 {
			return uint32(sl.meta)
		}
		if off := int(sl.meta >> 40); r.arena[off+8:off+len(s)] == s[8:] {
			return uint32(sl.meta)
		}
	}
}

// keyOf returns the slot key of s (at least 3 bytes) and its hash. For up to
// 8 bytes the key holds all of s, so equal keys and lengths mean equal
// strings; longer strings must also compare their bytes after the eighth.
func keyOf(s string) (key, hash uint64) {
	n := len(s)
	var tail uint64
	switch {
	case n >= 8:
		key = le64(s)
		if n > 8 {
			tail = le64(s[n-8:])
		}
	case n >= 4:
		key = uint64(le32(s)) | uint64(le32(s[n-4:]))<<32
	default:
		key = uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16
	}
	h := (key ^ bits.RotateLeft64(tail, 29) ^ uint64(n)<<59) * 0x9e3779b97f4a7c15
	h ^= h >> 31
	return key, h * 0xbf58476d1ce4e5b9
}

func le32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
