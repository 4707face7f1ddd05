package bpe

import (
	"math/bits"
	"sync/atomic"
)

// cacheBits sets the number of cache entries, 1<<cacheBits, in sets of two.
const cacheBits = 13

// maxCached is the longest piece the cache holds.
const maxCached = 24

// countCache remembers the token counts of recently merged pieces, which
// repeat: byte-pair merging costs tens of rank lookups in a table of several
// megabytes, a cache hit a few loads from one small array.
//
// It is two-way set-associative (32-byte entries, a set per cache line),
// shared by all goroutines and never locked: each entry is a sequence lock.
// A writer makes the sequence odd, writes, and makes it even again; a reader
// accepts what it read only if the sequence was even and unchanged around
// its reads. Entries hold whole pieces, so a hit is exact; collisions only
// cost misses. Pieces longer than maxCached, rarely repeated, are not cached.
type countCache struct {
	entries [1 << cacheBits]cacheEntry
}

type cacheEntry struct {
	seq atomic.Uint32
	// meta is len(piece)<<8 | count; zero when empty.
	meta atomic.Uint32
	// words hold the piece as packPiece packs it.
	words [3]atomic.Uint64
}

// packed is a piece of at most maxCached bytes packed into words. With the
// length, it identifies the piece.
type packed struct {
	w    [3]uint64
	n    int
	hash uint64
}

// packPiece packs p, 3 to maxCached bytes long. For 8 bytes or more the words
// are overlapping 8-byte windows at the start, middle and end, which together
// cover p; shorter pieces fit in w[0].
func packPiece(p string) packed {
	var k packed
	n := len(p)
	k.n = n
	switch {
	case n >= 8:
		m := n/2 - 4
		k.w = [3]uint64{le64(p), le64(p[m:]), le64(p[n-8:])}
	case n >= 4:
		k.w[0] = uint64(le32(p)) | uint64(le32(p[n-4:]))<<32
	default:
		k.w[0] = uint64(p[0]) | uint64(p[1])<<8 | uint64(p[2])<<16
	}
	h := (k.w[0] ^ bits.RotateLeft64(k.w[1], 21) ^ bits.RotateLeft64(k.w[2], 42) ^ uint64(n)) * 0x9e3779b97f4a7c15
	k.hash = (h ^ h>>32) * 0xbf58476d1ce4e5b9 // use the top bits
	return k
}

// set returns the two entries where piece k may be.
func (c *countCache) set(k *packed) []cacheEntry {
	i := k.hash >> (64 - cacheBits) &^ 1
	return c.entries[i : i+2 : i+2]
}

// get returns the cached count of the piece k, if any.
func (c *countCache) get(k *packed) (int, bool) {
	set := c.set(k)
	if n, ok := set[0].get(k); ok {
		return n, true
	}
	return set[1].get(k)
}

func (e *cacheEntry) get(k *packed) (int, bool) {
	seq := e.seq.Load()
	meta := e.meta.Load()
	if seq&1 != 0 || int(meta>>8) != k.n {
		return 0, false
	}
	if e.words[0].Load() != k.w[0] || e.words[1].Load() != k.w[1] || e.words[2].Load() != k.w[2] {
		return 0, false
	}
	if e.seq.Load() != seq {
		return 0, false
	}
	return int(meta & 0xff), true
}

// put caches count for the piece k in an empty entry of its set, else in
// one picked by the hash, unless another goroutine is writing that entry.
func (c *countCache) put(k *packed, count int) {
	set := c.set(k)
	e := &set[k.hash&1]
	switch {
	case set[0].meta.Load() == 0:
		e = &set[0]
	case set[1].meta.Load() == 0:
		e = &set[1]
	}
	seq := e.seq.Load()
	if seq&1 != 0 || !e.seq.CompareAndSwap(seq, seq+1) {
		return
	}
	e.meta.Store(uint32(k.n)<<8 | uint32(count))
	for i, w := range k.w {
		e.words[i].Store(w)
	}
	e.seq.Store(seq + 2)
}
