package analytics

import (
	"context"
	"errors"
	"sync"
)

// LazyClickHouse connects to ClickHouse and migrates the schema on first
// use, and again on the next use after that failed. With a spool, a
// gateway can then start, and keep journaling events, while ClickHouse is
// down: the first insert after it comes back connects and migrates. Insert
// and InsertDecisions are safe for concurrent use.
type LazyClickHouse struct {
	cfg ClickHouseConfig

	mu     sync.Mutex
	ch     *ClickHouse
	closed bool
}

// NewLazyClickHouse returns a LazyClickHouse for cfg; it does not connect.
func NewLazyClickHouse(cfg ClickHouseConfig) (*LazyClickHouse, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &LazyClickHouse{cfg: cfg}, nil
}

// Connect connects and migrates unless already connected.
func (l *LazyClickHouse) Connect(ctx context.Context) error {
	_, err := l.conn(ctx)
	return err
}

func (l *LazyClickHouse) conn(ctx context.Context) (*ClickHouse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("clickhouse: closed")
	}
	if l.ch != nil {
		return l.ch, nil
	}
	ch, err := OpenClickHouse(ctx, l.cfg)
	if err != nil {
		return nil, err
	}
	if err := ch.Migrate(ctx); err != nil {
		return nil, errors.Join(err, ch.Close())
	}
	l.ch = ch
	return ch, nil
}

// Insert connects if needed, then inserts events; see ClickHouse.Insert.
func (l *LazyClickHouse) Insert(ctx context.Context, events []Event) error {
	ch, err := l.conn(ctx)
	if err != nil {
		return err
	}
	return ch.Insert(ctx, events)
}

// InsertDecisions connects if needed, then inserts decisions; see
// ClickHouse.InsertDecisions.
func (l *LazyClickHouse) InsertDecisions(ctx context.Context, decisions []DecisionEvent) error {
	ch, err := l.conn(ctx)
	if err != nil {
		return err
	}
	return ch.InsertDecisions(ctx, decisions)
}

// Close closes the connection, if any; later inserts fail.
func (l *LazyClickHouse) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.ch == nil {
		return nil
	}
	err := l.ch.Close()
	l.ch = nil
	return err
}
