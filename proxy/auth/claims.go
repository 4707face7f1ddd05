package auth

import (
	"fmt"
	"strconv"
	"strings"
)

// claimPath is a parsed claim path: names, each optionally indexed.
type claimPath []claimStep

type claimStep struct {
	name  string
	index int // -1: none
}

// parseClaimPath parses "a.b[0].c". Names are non-empty and hold no
// brackets or dots; indexes are small non-negative integers.
func parseClaimPath(s string) (claimPath, error) {
	if s == "" || len(s) > 256 {
		return nil, fmt.Errorf("%q is not a claim path (want e.g. \"groups[0]\" or \"realm_access.roles\")", s)
	}
	var p claimPath
	for _, part := range strings.Split(s, ".") {
		step := claimStep{name: part, index: -1}
		if open := strings.IndexByte(part, '['); open >= 0 {
			if !strings.HasSuffix(part, "]") {
				return nil, fmt.Errorf("%q: %q has an unclosed index", s, part)
			}
			n, err := strconv.Atoi(part[open+1 : len(part)-1])
			if err != nil || n < 0 || n > 1000 {
				return nil, fmt.Errorf("%q: %q has a bad index", s, part)
			}
			step = claimStep{name: part[:open], index: n}
		}
		if step.name == "" || strings.ContainsAny(step.name, "[]") {
			return nil, fmt.Errorf("%q: empty or bracketed name in %q", s, part)
		}
		p = append(p, step)
	}
	return p, nil
}

func mustClaimPath(s string) claimPath {
	if s == "" {
		return nil
	}
	p, _ := parseClaimPath(s) // validated with the configuration
	return p
}

// lookup returns the value at p in claims, or nil.
func (p claimPath) lookup(claims map[string]any) any {
	if len(p) == 0 {
		return nil
	}
	var cur any = claims
	for _, st := range p {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[st.name]
		if st.index >= 0 {
			arr, ok := cur.([]any)
			if !ok || st.index >= len(arr) {
				return nil
			}
			cur = arr[st.index]
		}
	}
	return cur
}

// str returns the string at p; ok is false when the claim is present but
// not a string.
func (p claimPath) str(claims map[string]any) (s string, ok bool) {
	switch v := p.lookup(claims).(type) {
	case nil:
		return "", true
	case string:
		return v, true
	}
	return "", false
}

// strs returns the strings at p: a string array, or a single string (some
// issuers send one group as a string); ok is false for any other shape.
func (p claimPath) strs(claims map[string]any) (ss []string, ok bool) {
	switch v := p.lookup(claims).(type) {
	case nil:
		return nil, true
	case string:
		return []string{v}, true
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}
