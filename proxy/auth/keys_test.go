package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestNewKeyVerify(t *testing.T) {
	t.Parallel()
	key, id, hash, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, KeyPrefix+id+"_") {
		t.Fatalf("key %q does not start with %q", key, KeyPrefix+id+"_")
	}
	if got := KeyID(key); got != id {
		t.Fatalf("KeyID = %q, want %q", got, id)
	}
	if strings.Contains(hash, key) {
		t.Fatal("hash contains the key")
	}
	keys, err := NewKeys(Config{APIKeys: []KeyConfig{{ID: id, Hash: hash, Subject: "ana", Team: "ml", Roles: []string{"developer"}}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := keys.Verify(key)
	if err != nil {
		t.Fatalf("Verify(valid) = %v", err)
	}
	if p.Subject != "ana" || p.Team != "ml" || p.KeyID != id || p.Auth != "api_key" || p.Kind != "user" {
		t.Fatalf("principal = %+v", p)
	}
	other, _, _, _ := NewKey()
	bad := []string{"", "garbage", key + "x", key[:len(key)-1], KeyPrefix + id + "_", other, strings.ToUpper(key)}
	for _, b := range bad {
		if _, err := keys.Verify(b); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Verify(%q) = %v, want ErrUnauthenticated", b, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, id, hash, _ := NewKey()
	tests := []struct {
		name string
		keys []KeyConfig
		want string
	}{
		{"ok", []KeyConfig{{ID: id, Hash: hash, Subject: "s"}}, ""},
		{"raw key instead of hash", []KeyConfig{{ID: id, Hash: "tg_abc", Subject: "s"}}, "auth.api_keys[0].hash"},
		{"short hash", []KeyConfig{{ID: id, Hash: "sha256:abcd", Subject: "s"}}, "not a SHA-256"},
		{"no id", []KeyConfig{{Hash: hash, Subject: "s"}}, "auth.api_keys[0].id: empty"},
		{"duplicate id", []KeyConfig{{ID: id, Hash: hash, Subject: "s"}, {ID: id, Hash: hash, Subject: "t"}}, "used twice"},
		{"no subject", []KeyConfig{{ID: id, Hash: hash}}, "subject: empty"},
		{"bad kind", []KeyConfig{{ID: id, Hash: hash, Subject: "s", Kind: "robot"}}, "kind: \"robot\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := (&Config{APIKeys: tc.keys}).Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestFromHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct{ auth, xkey, want string }{
		{"Bearer tg_a_b", "", "tg_a_b"},
		{"bearer  tg_a_b ", "", "tg_a_b"},
		{"", "tg_x_y", "tg_x_y"},
		{"Basic abc", "", ""},
	}
	for _, tc := range tests {
		if got := FromHeaders(tc.auth, tc.xkey); got != tc.want {
			t.Errorf("FromHeaders(%q, %q) = %q, want %q", tc.auth, tc.xkey, got, tc.want)
		}
	}
}

func FuzzKeyID(f *testing.F) {
	f.Add("tg_kabc_secret")
	f.Add("tg__")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id := KeyID(s)
		if id != "" && !strings.HasPrefix(s, KeyPrefix+id+"_") {
			t.Fatalf("KeyID(%q) = %q, not a prefix", s, id)
		}
	})
}
