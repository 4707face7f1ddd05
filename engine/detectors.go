package engine

import (
	"encoding/json"
	"fmt"

	"github.com/tollgate/tollgate/engine/pii"
)

// newScanner builds the PII scanner a bundle asks for: the built-in
// detectors plus the custom ones of data.data.pii.custom_detectors, a list
// of {"type", "pattern", "trigger", "validator", "context", "window"} (see
// pii.CustomDetector). It returns nil when the bundle has none, so that the
// gateway's default scanner serves; a detector that does not compile makes
// the bundle fail (the last good one keeps serving).
func newScanner(data map[string]any) (*pii.Scanner, error) {
	root, _ := data["data"].(map[string]any)
	p, _ := root["pii"].(map[string]any)
	raw, ok := p["custom_detectors"]
	if !ok {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("data.data.pii.custom_detectors: %w", err)
	}
	var custom []pii.CustomDetector
	if err := json.Unmarshal(b, &custom); err != nil {
		return nil, fmt.Errorf("data.data.pii.custom_detectors: want a list of {\"type\", \"pattern\", ...} detectors: %w", err)
	}
	if len(custom) == 0 {
		return nil, nil
	}
	s, err := pii.New(pii.Config{Custom: custom})
	if err != nil {
		return nil, fmt.Errorf("data.data.pii.custom_detectors: %w", err)
	}
	return s, nil
}
