package provider

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// fileRecheck is how often a credential file is checked for changes.
const fileRecheck = time.Second

// credential is an upstream's API key or access token, from the environment
// or a file. It never prints its value: String, GoString and LogValue
// redact it, and adapters hold it by pointer so that printing an adapter
// with %+v shows an address, not the key.
type credential struct {
	source string // "env FOO", "file /path", or "" for none

	mu      sync.Mutex
	value   string
	file    string
	modTime time.Time
	checked time.Time
}

// loadCredential reads the credential of provider name. Neither source set
// means no credential (an OpenAI-compatible server without auth).
func loadCredential(name, env, file string) (*credential, error) {
	switch {
	case env != "":
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return nil, fmt.Errorf("provider %s: environment variable %s is empty; export the provider's API key", name, env)
		}
		return &credential{source: "env " + env, value: v}, nil
	case file != "":
		c := &credential{source: "file " + file, file: file}
		if err := c.reload(time.Now()); err != nil {
			return nil, fmt.Errorf("provider %s: read api_key_file: %w", name, err)
		}
		return c, nil
	}
	return &credential{}, nil
}

// reload reads the file if it changed. c.mu must be held, or c unshared.
func (c *credential) reload(now time.Time) error {
	c.checked = now
	st, err := os.Stat(c.file)
	if err != nil {
		return err
	}
	if c.value != "" && st.ModTime().Equal(c.modTime) {
		return nil
	}
	b, err := os.ReadFile(c.file)
	if err != nil {
		return err
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return fmt.Errorf("%s is empty; write the key or token into it", c.file)
	}
	c.value, c.modTime = v, st.ModTime()
	return nil
}

// get returns the current value, re-reading a file that changed (checked at
// most once a second). A file that has become unreadable keeps the last
// good value.
func (c *credential) get() string {
	if c == nil {
		return ""
	}
	if c.file == "" {
		return c.value
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= fileRecheck {
		_ = c.reload(now)
	}
	return c.value
}

func (c *credential) String() string {
	if c == nil || c.source == "" {
		return "none"
	}
	return "[redacted from " + c.source + "]"
}

func (c *credential) GoString() string { return c.String() }

func (c *credential) LogValue() slog.Value { return slog.StringValue(c.String()) }

// LogValue describes an adapter for logs, without its credential.
func (b *base) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", b.name), slog.String("kind", b.kind), slog.String("credential", b.cred.String()))
}
