package bpe

import "slices"

// smallPiece is the longest piece merged by mergeScan in a buffer on the
// caller's stack. Longer pieces, rare in real text but easy to send, use
// mergeHeap, which stays O(n log n).
const smallPiece = 64

// part is a part of a piece during merging: it starts at start, and merging
// it with the next part would form the token of rank rank (or noRank).
type part struct {
	start int32
	rank  uint32
}

// merge runs byte-pair encoding on p (at least two bytes): starting from
// single bytes, it repeatedly merges the adjacent pair that forms the
// lowest-ranked token, the leftmost one on ties, until no pair forms a token.
// It returns the part boundaries, ending with the sentinel part{len(p), _}.
// buf, if large enough, holds the result.
func (r *ranks) merge(p string, buf []part) []part {
	if len(p) <= smallPiece && cap(buf) > len(p) {
		return r.mergeScan(p, buf[:len(p)+1])
	}
	return r.mergeHeap(p)
}

// mergeScan merges with a linear scan for the lowest rank at each step, as
// tiktoken does: O(n²), fast for short pieces. parts has length len(p)+1.
func (r *ranks) mergeScan(p string, parts []part) []part {
	n := len(p)
	for i := 0; i+1 < n; i++ {
		parts[i] = part{int32(i), r.pair[int(p[i])<<8|int(p[i+1])]}
	}
	parts[n-1] = part{int32(n - 1), noRank}
	parts[n] = part{int32(n), noRank}
	for {
		best, at := noRank, -1
		for i, pt := range parts[:len(parts)-1] {
			if pt.rank < best {
				best, at = pt.rank, i
			}
		}
		if at < 0 {
			return parts
		}
		// Parts at and at+1 become one: drop boundary at+1 and recompute
		// the ranks of the merges that involve the new part.
		if at+3 < len(parts) {
			parts[at].rank = r.lookup(p[parts[at].start:parts[at+3].start])
		} else {
			parts[at].rank = noRank
		}
		if at > 0 {
			parts[at-1].rank = r.lookup(p[parts[at-1].start:parts[at+2].start])
		}
		parts = slices.Delete(parts, at+1, at+2)
	}
}

// mergeHeap gives the same result as mergeScan in O(n log n): parts form a
// linked list and candidate merges sit in a min-heap keyed by rank, then
// start, packed in one uint64. A candidate is stale once its part has gone or
// its rank has changed; those are skipped when popped. Offsets are int32:
// p must be shorter than 2 GiB.
func (r *ranks) mergeHeap(p string) []part {
	n := int32(len(p))
	next := make([]int32, n+1)
	prev := make([]int32, n+1)
	rank := make([]uint32, n+1)
	h := make(minHeap, 0, n)
	for i := range n + 1 {
		next[i], prev[i], rank[i] = i+1, i-1, noRank
	}
	// rankAt is the rank of the merge of part i with its successor.
	rankAt := func(i int32) uint32 {
		j := next[i]
		if j >= n {
			return noRank
		}
		return r.lookup(p[i:next[j]])
	}
	for i := int32(0); i+1 < n; i++ {
		if rank[i] = rankAt(i); rank[i] != noRank {
			h = append(h, uint64(rank[i])<<32|uint64(i))
		}
	}
	h.init()
	for len(h) > 0 {
		top := h.pop()
		i := int32(uint32(top))
		if rank[i] != uint32(top>>32) {
			continue
		}
		j := next[i]
		rank[j] = noRank
		next[i] = next[j]
		prev[next[j]] = i
		for _, b := range [2]int32{i, prev[i]} {
			if b < 0 {
				continue
			}
			if rank[b] = rankAt(b); rank[b] != noRank {
				h.push(uint64(rank[b])<<32 | uint64(b))
			}
		}
	}
	var parts []part
	for i := int32(0); i <= n; i = next[i] {
		parts = append(parts, part{start: i})
	}
	return parts
}

// minHeap is a binary min-heap of uint64, typed so that pushes don't box.
type minHeap []uint64

func (h minHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *minHeap) push(x uint64) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if s[parent] <= s[i] {
			break
		}
		s[parent], s[i] = s[i], s[parent]
		i = parent
	}
}

func (h *minHeap) pop() uint64 {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	*h = s[:last]
	h.down(0)
	return top
}

func (h minHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if rgt := l + 1; rgt < len(h) && h[rgt] < h[l] {
			m = rgt
		}
		if h[i] <= h[m] {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
