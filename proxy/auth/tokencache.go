package auth

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/tollgate/tollgate/engine"
)

// tokenCache remembers the principals of verified tokens by the SHA-256 of
// the token, each until a deadline no later than the token's exp. Only
// tokens that passed every check are stored, and the key covers the whole
// token, so a tampered token never hits.
type tokenCache struct {
	mu  sync.RWMutex
	m   map[[sha256.Size]byte]tokenEntry
	max int
}

type tokenEntry struct {
	id    engine.Identity
	until time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{m: make(map[[sha256.Size]byte]tokenEntry), max: max}
}

func (c *tokenCache) get(sum *[sha256.Size]byte, now time.Time) (engine.Identity, bool) {
	c.mu.RLock()
	e, ok := c.m[*sum]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return engine.Identity{}, false
	}
	return e.id, true
}

func (c *tokenCache) put(sum *[sha256.Size]byte, id engine.Identity, until, now time.Time) {
	if !now.Before(until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		// Still full of live entries: drop arbitrary ones (map order is
		// random) down to three quarters, so the sweep is rare.
		for k := range c.m {
			if len(c.m) < c.max*3/4+1 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[*sum] = tokenEntry{id: id, until: until}
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
