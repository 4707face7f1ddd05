package analytics

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

func TestJSONLinesRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	j, err := OpenJSONLines(path)
	if err != nil {
		t.Fatal(err)
	}
	events := sampleEvents(5)
	ctx := context.Background()
	if err := j.Insert(ctx, events[:2]); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if err := j.Insert(ctx, events[2:]); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := j.Insert(ctx, events); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Insert after Close = %v, want os.ErrClosed", err)
	}

	// Reopening appends.
	j, err = OpenJSONLines(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Insert(ctx, events[:1]); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want := append(append([]Event(nil), events...), events[0])

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %d: %v", len(got)+1, err)
		}
		got = append(got, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestJSONLinesSnakeCase(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(sampleEvents(2)[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"request_id", "timestamp", "model_requested", "prompt_tokens", "cost_micros", "pii_types", "ttft_ms", "cut_off"} {
		if _, ok := m[key]; !ok {
			t.Errorf("JSON has no key %q; got %s", key, b)
		}
	}
}

func TestEventCostUSD(t *testing.T) {
	t.Parallel()
	tests := []struct {
		micros int64
		want   float64
	}{
		{0, 0},
		{1, 0.000001},
		{1_234_567, 1.234567},
	}
	for _, tc := range tests {
		e := Event{CostMicros: tc.micros}
		if got := e.CostUSD(); got != tc.want {
			t.Errorf("CostUSD() with %d micros = %v, want %v", tc.micros, got, tc.want)
		}
	}
}

// TestJSONLinesDecisions writes decisions through a DecisionWriter into a
// file of their own and reads them back.
func TestJSONLinesDecisions(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	j, err := OpenJSONLines(path)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := newTestDecisionWriter(t, WriterConfig{QueueSize: 10, BatchSize: 2, FlushInterval: time.Hour},
		DecisionInserterFunc(j.InsertDecisions), prometheus.NewRegistry())
	w.Start()
	want := sampleDecisions(5)
	want[4] = DecisionEvent{RequestID: "bare", Time: want[4].Time} // omitted fields read back as zero
	for _, d := range want {
		w.Enqueue(d)
	}
	if err := w.Stop(ctxT(t)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := j.InsertDecisions(context.Background(), want); !errors.Is(err, os.ErrClosed) {
		t.Errorf("InsertDecisions after Close = %v, want os.ErrClosed", err)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []DecisionEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var d DecisionEvent
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("line %d: %v", len(got)+1, err)
		}
		got = append(got, d)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
