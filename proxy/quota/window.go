package quota

import (
	"fmt"
	"time"
)

// Window is the period a limit counts over. Windows are fixed and aligned,
// not sliding: a "day" limit resets at midnight.
type Window string

// The supported windows.
const (
	Minute Window = "minute"
	Hour   Window = "hour"
	Day    Window = "day"
	Month  Window = "month"
)

// ParseWindow converts a policy's window name.
func ParseWindow(s string) (Window, error) {
	switch w := Window(s); w {
	case Minute, Hour, Day, Month:
		return w, nil
	}
	return "", fmt.Errorf("invalid window %q (want %q, %q, %q or %q)", s, Minute, Hour, Day, Month)
}

// Bounds returns the window containing t: [start, end). Minute and hour
// windows are aligned in UTC (time zones with sub-hour offsets would otherwise
// disagree on the hour); day and month windows are aligned in loc (nil means
// UTC), so a day may last 23 or 25 hours around a DST change. start is
// expressed in the aligning location.
func (w Window) Bounds(t time.Time, loc *time.Location) (start, end time.Time, err error) {
	if loc == nil {
		loc = time.UTC
	}
	switch w {
	case Minute:
		start = t.UTC().Truncate(time.Minute)
		return start, start.Add(time.Minute), nil
	case Hour:
		start = t.UTC().Truncate(time.Hour)
		return start, start.Add(time.Hour), nil
	case Day:
		y, m, d := t.In(loc).Date()
		return time.Date(y, m, d, 0, 0, 0, 0, loc), time.Date(y, m, d+1, 0, 0, 0, 0, loc), nil
	case Month:
		y, m, _ := t.In(loc).Date()
		return time.Date(y, m, 1, 0, 0, 0, 0, loc), time.Date(y, m+1, 1, 0, 0, 0, 0, loc), nil
	}
	_, err = ParseWindow(string(w))
	return time.Time{}, time.Time{}, err
}

// appendStamp appends the bucket name of the window starting at start, in
// start's location: 202611251204, 2026112512, 20261125 or 202611.
func (w Window) appendStamp(b []byte, start time.Time) []byte {
	switch w {
	case Minute:
		return start.AppendFormat(b, "200601021504")
	case Hour:
		return start.AppendFormat(b, "2006010215")
	case Day:
		return start.AppendFormat(b, "20060102")
	default:
		return start.AppendFormat(b, "200601")
	}
}

// dimension indexes the three counters of a scope.
type dimension uint8

const (
	dimTokens dimension = iota
	dimRequests
	dimUSD
	numDimensions
)

func (d dimension) String() string {
	switch d {
	case dimTokens:
		return DimensionTokens
	case dimRequests:
		return DimensionRequests
	default:
		return DimensionUSD
	}
}

func parseDimension(s string) (dimension, bool) {
	switch s {
	case DimensionTokens:
		return dimTokens, true
	case DimensionRequests:
		return dimRequests, true
	case DimensionUSD:
		return dimUSD, true
	}
	return 0, false
}
