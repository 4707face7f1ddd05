package bpe

import "testing"

// FuzzCount checks that Count and Encode never panic and agree with the
// reference tokenizer, up to its known defects (see reference_test.go).
func FuzzCount(f *testing.F) {
	for _, s := range fixedCorpus {
		f.Add(s)
	}
	for _, s := range goldenExtra {
		f.Add(s)
	}
	rs := loadRefs(f)
	f.Fuzz(func(t *testing.T, text string) {
		for _, r := range rs {
			r.check(t, text)
		}
	})
}
