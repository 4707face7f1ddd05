package moderation

import (
	"slices"
	"testing"
)

// FuzzVerdict feeds arbitrary response bodies to the parser: it must not
// panic, and a body it accepts must hold a verdict on every input, with
// sorted, distinct categories.
func FuzzVerdict(f *testing.F) {
	for _, seed := range []string{
		`{"id":"m","model":"omni-moderation-latest","results":[{"flagged":true,"categories":{"violence":true,"hate":false},"category_scores":{"violence":0.9,"hate":0.01}}]}`,
		`{"results":[{"flagged":false},{"flagged":false,"category_scores":{"hate":0.7}}]}`,
		`{"results":[{"categories":{"violence":true}}]}`,
		`{"results":null}`,
		`{"results":[{"flagged":null}]}`,
		`[]`,
		`{`,
	} {
		f.Add([]byte(seed), 1)
		f.Add([]byte(seed), 2)
	}
	c := &Client{s: settings{thresholds: map[string]float64{"hate": 0.5}}}
	f.Fuzz(func(t *testing.T, data []byte, n int) {
		res, err := c.verdict(data, n)
		if err != nil {
			if res.Checked || res.Flagged || res.Categories != nil {
				t.Errorf("error %v with a non-zero result %+v", err, res)
			}
			return
		}
		if !res.Checked || n < 0 {
			t.Errorf("accepted %q for %d inputs as %+v", data, n, res)
		}
		if !slices.IsSorted(res.Categories) || len(slices.Compact(slices.Clone(res.Categories))) != len(res.Categories) {
			t.Errorf("categories %q are not sorted and distinct", res.Categories)
		}
		if len(res.Categories) > 0 && !res.Flagged {
			t.Errorf("categories %q without flagged", res.Categories)
		}
	})
}
