package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecodeDecision feeds arbitrary JSON documents as policy results: the
// decoder must never panic, every rejection must wrap ErrInvalidDecision,
// and every accepted decision must be consistent (denied exactly when it
// carries deny reasons).
func FuzzDecodeDecision(f *testing.F) {
	f.Add(`{"allow":true,"deny":[],"mask":{"rules":[{"types":["EMAIL"],"action":"redact"}],"response":false},"limits":[{"scope":"key:k","window":"minute","tokens":10}],"log":{"store_prompt":false,"tags":{}}}`)
	f.Add(`{"allow":false,"deny":[{"code":"x","status":451}]}`)
	f.Add(`{"route":{"targets":[{"provider":"p","model":"m","weight":2}],"timeout_ms":10}}`)
	f.Add(`null`)
	f.Add(`{"allow":"yes"}`)
	f.Fuzz(func(t *testing.T, doc string) {
		dec := json.NewDecoder(bytes.NewReader([]byte(doc)))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		d, err := decodeDecision(v)
		if err != nil {
			if !errors.Is(err, ErrInvalidDecision) {
				t.Fatalf("error %v does not wrap ErrInvalidDecision", err)
			}
			return
		}
		if d.Allow == (len(d.Deny) > 0) {
			t.Fatalf("accepted decision allow=%v with %d deny reasons", d.Allow, len(d.Deny))
		}
		for _, x := range d.Deny {
			if x.Status < 400 || x.Status > 599 || x.Code == "" {
				t.Fatalf("accepted deny %+v", x)
			}
		}
	})
}
