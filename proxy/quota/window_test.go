package quota_test

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/quota"
)

func TestParseWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    quota.Window
		wantErr bool
	}{
		{"minute", quota.Minute, false},
		{"hour", quota.Hour, false},
		{"day", quota.Day, false},
		{"month", quota.Month, false},
		{"Day", "", true},
		{"week", "", true},
		{"", "", true},
	}
	for _, tc := range tests {
		got, err := quota.ParseWindow(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseWindow(%q): got %q, %v; want %q, error %t", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"minute", "hour", "day", "month", "", "week", "dáy"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := quota.ParseWindow(s)
		if err != nil {
			return
		}
		if string(w) != s {
			t.Fatalf("ParseWindow(%q) = %q", s, w)
		}
		start, end, err := w.Bounds(t0, nil)
		if err != nil || !start.Before(end) {
			t.Fatalf("Bounds of parsed %q: %s, %s, %v", w, start, end, err)
		}
	})
}

func TestWindowBounds(t *testing.T) {
	t.Parallel()
	ny := newYork(t)
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatalf("load location: %v", err)
	}
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		return v
	}
	tests := []struct {
		name       string
		w          quota.Window
		loc        *time.Location
		at         time.Time
		start, end time.Time
	}{
		{"minute", quota.Minute, nil, utc("2026-11-25T12:34:56.789Z"), utc("2026-11-25T12:34:00Z"), utc("2026-11-25T12:35:00Z")},
		{"minute boundary", quota.Minute, nil, utc("2026-11-25T12:35:00Z"), utc("2026-11-25T12:35:00Z"), utc("2026-11-25T12:36:00Z")},
		{"hour ignores location", quota.Hour, kolkata, utc("2026-11-25T12:34:56Z"), utc("2026-11-25T12:00:00Z"), utc("2026-11-25T13:00:00Z")},
		{"day utc", quota.Day, nil, utc("2026-11-25T23:59:59.999Z"), utc("2026-11-25T00:00:00Z"), utc("2026-11-26T00:00:00Z")},
		{"day new york", quota.Day, ny, utc("2026-11-26T03:00:00Z"), utc("2026-11-25T05:00:00Z"), utc("2026-11-26T05:00:00Z")},
		{"day half-hour offset", quota.Day, kolkata, utc("2026-11-25T18:29:59Z"), utc("2026-11-24T18:30:00Z"), utc("2026-11-25T18:30:00Z")},
		{"day of dst end lasts 25h", quota.Day, ny, utc("2026-11-01T12:00:00Z"), utc("2026-11-01T04:00:00Z"), utc("2026-11-02T05:00:00Z")},
		{"day of dst start lasts 23h", quota.Day, ny, utc("2026-03-08T12:00:00Z"), utc("2026-03-08T05:00:00Z"), utc("2026-03-09T04:00:00Z")},
		{"month", quota.Month, nil, utc("2026-02-14T10:00:00Z"), utc("2026-02-01T00:00:00Z"), utc("2026-03-01T00:00:00Z")},
		{"month december", quota.Month, ny, utc("2026-12-31T12:00:00Z"), utc("2026-12-01T05:00:00Z"), utc("2027-01-01T05:00:00Z")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start, end, err := tc.w.Bounds(tc.at, tc.loc)
			if err != nil {
				t.Fatalf("Bounds: %v", err)
			}
			if !start.Equal(tc.start) || !end.Equal(tc.end) {
				t.Errorf("Bounds(%s): got [%s, %s), want [%s, %s)", tc.at, start.UTC(), end.UTC(), tc.start, tc.end)
			}
		})
	}
	if _, _, err := quota.Window("week").Bounds(t0, nil); err == nil {
		t.Errorf("Bounds of an unknown window: got nil error")
	}
}

func TestTightestTieBreak(t *testing.T) {
	t.Parallel()
	minute := quota.Limit{Scope: "key:k", Window: quota.Minute, Tokens: 100}
	day := quota.Limit{Scope: "team:t", Window: quota.Day, Tokens: 1000}
	r := &quota.Reservation{Status: []quota.Status{
		{Limit: minute, Dimension: quota.DimensionTokens, Remaining: 50, ResetAt: minuteEnd},
		{Limit: day, Dimension: quota.DimensionTokens, Remaining: 50, ResetAt: minuteEnd.Add(time.Hour)},
	}}
	got, ok := r.Tightest(quota.DimensionTokens)
	if !ok || got.Limit != day {
		t.Errorf("Tightest on equal remaining: got %+v, want the limit resetting last (%s)", got.Limit, day.Scope)
	}
	if got := got.Limit.Max(got.Dimension); got != 1000 {
		t.Errorf("Max: got %d, want 1000", got)
	}
}
