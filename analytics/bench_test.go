package analytics

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/analytics/clickhousetest"
)

// Measured on the shared 2-core development machine (AMD EPYC, load
// average 3-5 from other work, clickhouse-server 18.16 on the same cores),
// go test -run '^$' -bench . -benchmem ./analytics/:
//
//	BenchmarkEnqueue/memory        240 ns/op     0 allocs/op  (request path)
//	BenchmarkEnqueue/spool         240 ns/op     0 allocs/op  (request path)
//	BenchmarkSpoolAppend           ~6 µs/event, 160,000 events/s, ~100 MB/s (JSON + write(2))
//	BenchmarkSpoolRead             ~20 µs/event, 45,000 events/s (JSON decode; only when the shipper lags)
//	BenchmarkWriterClickHouse/memory  43,000-52,000 events/s enqueue to inserted
//	BenchmarkWriterClickHouse/spool   25,000-32,000 events/s enqueue to inserted

// benchEvent is a realistic event: every identity, routing and usage field
// set, a PII type and two tags.
func benchEvent(i int) Event {
	return Event{
		RequestID: fmt.Sprintf("bench-%09d", i), Time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		Subject: "svc-search", KeyID: "k_0123456789", Team: "search", Org: "acme", Kind: KindService,
		ModelRequested: "gpt-4o", ModelRouted: "gpt-4o-mini", Provider: "openai", Status: 200, Allowed: true,
		BundleRevision: "rev-0042", PIITypes: []string{"EMAIL"}, PIICounts: []int{1}, PIICount: 1,
		PromptTokensEstimated: 250, PromptTokens: 248, CompletionTokens: 120, CostMicros: 1234,
		LatencyMS: 412.5, TTFTMS: 88.25, Stream: true, Attempts: 1, Path: "/v1/chat/completions", ClientIP: "10.1.2.3",
		Tags: map[string]string{"project": "search", "env": "prod"},
	}
}

type discard[T any] struct{}

func (discard[T]) Insert(context.Context, []T) error { return nil }

// BenchmarkEnqueue is the cost on the request path: one Enqueue.
func BenchmarkEnqueue(b *testing.B) {
	for _, spool := range []bool{false, true} {
		name := "memory"
		cfg := WriterConfig{QueueSize: 1 << 16, BatchSize: 1000, FlushInterval: time.Second}
		if spool {
			name = "spool"
			cfg.Spool = SpoolConfig{Dir: b.TempDir(), Fsync: FsyncNever}
		}
		b.Run(name, func(b *testing.B) {
			w, err := NewWriter(cfg, discard[Event]{}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			w.Start()
			ev := benchEvent(1)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				w.Enqueue(ev)
				if i%8192 == 8191 {
					// Let the writer catch up, untimed, so no Enqueue
					// takes the queue-full path.
					b.StopTimer()
					if err := w.Sync(ctx); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			}
			b.StopTimer()
			if err := w.Stop(ctx); err != nil {
				b.Fatal(err)
			}
			if d := value(b, w.m.dropped.WithLabelValues(reasonQueueFull)); d > 0 {
				b.Fatalf("%v events dropped: the benchmark measured the queue-full path", d)
			}
		})
	}
}

// BenchmarkSpoolAppend journals frames of 100 events.
func BenchmarkSpoolAppend(b *testing.B) {
	sp, err := openSpool[Event](b.TempDir(), SpoolConfig{Fsync: FsyncNever, MaxBytes: 1 << 40}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer sp.close()
	batch := make([]Event, 100)
	for i := range batch {
		batch[i] = benchEvent(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, _, err := sp.append(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	bytes, _ := sp.stats()
	b.SetBytes(bytes / int64(b.N))
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSpoolRead reads back frames of 100 events.
func BenchmarkSpoolRead(b *testing.B) {
	dir := b.TempDir()
	sp, err := openSpool[Event](dir, SpoolConfig{Fsync: FsyncNever, MaxBytes: 1 << 40}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer sp.close()
	batch := make([]Event, 100)
	for i := range batch {
		batch[i] = benchEvent(i)
	}
	for range b.N {
		if _, _, err := sp.append(batch); err != nil {
			b.Fatal(err)
		}
	}
	pos := spoolPos{seq: 1}
	buf := make([]Event, 0, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for n < b.N*len(batch) {
		var err error
		buf, pos, err = sp.read(pos, 1000, buf[:0], spoolPos{})
		if err != nil || len(buf) == 0 {
			b.Fatalf("read at %v: %d events, %v", pos, len(buf), err)
		}
		n += len(buf)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkWriterClickHouse is the writer's throughput into a local
// ClickHouse, enqueue to inserted, with and without the spool.
func BenchmarkWriterClickHouse(b *testing.B) {
	srv := clickhousetest.Start(b)
	ctx := context.Background()
	ch, err := OpenClickHouse(ctx, ClickHouseConfig{Addr: []string{srv.Addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	events := make([]Event, 20000)
	for i := range events {
		events[i] = benchEvent(i)
	}
	for _, spool := range []bool{false, true} {
		name := "memory"
		cfg := WriterConfig{QueueSize: 50000, BatchSize: 10000, FlushInterval: 100 * time.Millisecond}
		if spool {
			name = "spool"
			cfg.Spool = SpoolConfig{Dir: filepath.Join(b.TempDir(), "s"), Fsync: FsyncInterval}
		}
		b.Run(name, func(b *testing.B) {
			w, err := NewWriter(cfg, ch, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			w.Start()
			b.ResetTimer()
			for i := range b.N {
				w.Enqueue(events[i%len(events)])
				if i%20000 == 19999 {
					// Keep the queue from overflowing: wait for the journal
					// (spool) or the inserts (memory) to catch up.
					if err := w.Sync(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := w.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if err := w.Stop(ctx); err != nil {
				b.Fatal(err)
			}
			if d := value(b, w.m.dropped.WithLabelValues(reasonQueueFull)); d > 0 {
				b.Fatalf("%v events dropped: queue full", d)
			}
		})
	}
}
