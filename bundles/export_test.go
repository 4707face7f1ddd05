package bundles

import (
	"context"
	"time"
)

// SetClock replaces the manager's sleep between polls and its jitter source
// (a number in [0, 1)); call it before Run.
func SetClock[P any](m *Manager[P], wait func(context.Context, time.Duration) error, jitter func() float64) {
	m.wait = wait
	if jitter != nil {
		m.jitter = jitter
	}
}
