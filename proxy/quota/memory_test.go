package quota_test

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/quota"
)

func newMemory(_ *testing.T, loc *time.Location) testLimiter { return quota.NewMemory(loc) }

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	testConformance(t, newMemory)
}

func TestMemoryConcurrent(t *testing.T) {
	t.Parallel()
	testConcurrent(t, quota.NewMemory(nil))
}

func TestMemoryRandomized(t *testing.T) {
	t.Parallel()
	testRandomized(t, quota.NewMemory(nil), 2000)
}

func TestMemoryConcurrentExtend(t *testing.T) {
	t.Parallel()
	testConcurrentExtend(t, quota.NewMemory(nil))
}
