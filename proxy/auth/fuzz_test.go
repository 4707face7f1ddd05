package auth

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func FuzzParseKey(f *testing.F) {
	k, _, _, _ := NewKey()
	for _, s := range []string{k, "tg_kdemo0000_makerunlocaldemokeynotforproduction", "tg__", "tg_a_", "tg_a_b_c",
		"tg_A_b", "", "tg_" + strings.Repeat("a", 70) + "_b", "tg_a_\x00", "Bearer tg_a_b"} {
		f.Add(s)
	}
	keys, err := NewKeys(Config{APIKeys: []KeyConfig{{ID: KeyID(k), Hash: HashKey(k), Subject: "s"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, ok := ParseKey(s)
		if !ok {
			if id != "" || secret != "" {
				t.Fatalf("ParseKey(%q) failed but returned %q, %q", s, id, secret)
			}
		} else {
			if s != KeyPrefix+id+"_"+secret {
				t.Fatalf("ParseKey(%q) = %q, %q: does not rebuild the key", s, id, secret)
			}
			if len(s) > MaxKeyBytes || len(id) > 64 || !keyChars(id) || !keyChars(secret) {
				t.Fatalf("ParseKey(%q) accepted a key outside the grammar", s)
			}
		}
		if got := KeyID(s); got != id {
			t.Fatalf("KeyID(%q) = %q, ParseKey id %q", s, got, id)
		}
		if _, err := keys.Verify(s); (err == nil) != (s == k) {
			t.Fatalf("Verify(%q) = %v", s, err)
		}
	})
}

func FuzzPreparseJWT(f *testing.F) {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	good := enc(map[string]string{"alg": "RS256", "kid": "k1"}) + "." + enc(map[string]any{"iss": "https://i", "exp": 1}) + ".c2ln"
	f.Add(good)
	f.Add(enc(map[string]string{"alg": "none"}) + "." + enc(map[string]any{}) + ".")
	f.Add(enc(map[string]any{"alg": "RS256", "jwk": map[string]string{"kty": "RSA"}}) + ".e30.c2ln")
	f.Add(enc(map[string]any{"alg": "HS256"}) + ".e30.c2ln")
	f.Add(enc(map[string]any{"alg": "RS256", "X5U": "http://x"}) + ".e30.c2ln")
	f.Add("e30.e30.e30")
	f.Add("..")
	f.Add("a.b.c.d")
	f.Add(enc(map[string]any{"alg": "RS256"}) + "." + enc([]int{1}) + ".c2ln")
	f.Add(enc(map[string]any{"alg": "RS256", "alg ": "none"}) + ".bnVsbA.c2ln")
	f.Fuzz(func(t *testing.T, tok string) {
		p, reason := preparseJWT(tok, DefaultMaxTokenBytes)
		if reason != "" {
			if p != (preparsed{}) {
				t.Fatalf("failure %s with a result %+v", reason, p)
			}
			return
		}
		if len(tok) > DefaultMaxTokenBytes {
			t.Fatalf("accepted a token of %d bytes", len(tok))
		}
		if !asymmetricAlgorithms[p.alg] {
			t.Fatalf("accepted alg %q", p.alg)
		}
		parts := strings.Split(tok, ".")
		if len(parts) != 3 || parts[2] == "" {
			t.Fatalf("accepted %d parts / empty signature", len(parts))
		}
		hb, err := base64.RawURLEncoding.DecodeString(parts[0])
		if err != nil {
			t.Fatalf("accepted an undecodable header: %v", err)
		}
		var h map[string]any
		if err := json.Unmarshal(hb, &h); err != nil {
			t.Fatalf("accepted a header that is not an object: %v", err)
		}
		for name := range h {
			for _, k := range forbiddenHeaders {
				if strings.EqualFold(name, k) {
					t.Fatalf("accepted a header with %q", name)
				}
			}
		}
	})
}

func FuzzClaimPath(f *testing.F) {
	for _, s := range []string{"sub", "groups[0]", "realm_access.roles", "a.b[2].c", "[0]", "a[", "a]", "a..b", "a[-1]"} {
		f.Add(s)
	}
	claims := map[string]any{"sub": "x", "groups": []any{"g"}, "a": map[string]any{"b": []any{1.0, "s", map[string]any{"c": "d"}}}}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseClaimPath(s)
		if err != nil {
			return
		}
		_ = p.lookup(claims)
		_, _ = p.str(claims)
		_, _ = p.strs(claims)
	})
}
