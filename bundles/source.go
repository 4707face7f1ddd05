package bundles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// source produces the current bundle of one configured location.
type source interface {
	// load returns the current bundle, or nil and no error when it is
	// known to be unchanged since the last successful load (HTTP 304, same
	// file). Calls are serialized by the caller.
	load(ctx context.Context) (*Bundle, error)
}

// fsSource is a fixed tree, such as the embedded library.
type fsSource struct {
	fsys fs.FS
	name string
}

func (s *fsSource) load(context.Context) (*Bundle, error) { return LoadFS(s.fsys, s.name) }

// dirSource is a policy directory.
type dirSource struct{ path string }

func (s *dirSource) load(context.Context) (*Bundle, error) { return LoadDir(s.path) }

// fileSource is a .tar.gz bundle on disk.
type fileSource struct {
	path string
	opts ArchiveOptions

	last os.FileInfo // of the last successful load
}

func (s *fileSource) load(context.Context) (*Bundle, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("load bundle: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load bundle: %w", err)
	}
	if s.last != nil && os.SameFile(s.last, st) && st.Size() == s.last.Size() && st.ModTime().Equal(s.last.ModTime()) {
		return nil, nil
	}
	b, err := LoadArchive(f, s.path, s.opts)
	if err != nil {
		return nil, err
	}
	s.last = st
	return b, nil
}

// httpSource polls a bundle server with conditional requests.
type httpSource struct {
	url     string
	label   string
	headers map[string]string
	timeout time.Duration
	opts    ArchiveOptions
	client  *http.Client

	mu   sync.Mutex
	etag string // of the last bundle read successfully
}

// newHTTPClient returns the client of one HTTP source. Keep-alives are off:
// polls are tens of seconds apart, and no idle connection outlives Run.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DisableKeepAlives = true
	return &http.Client{Transport: t}
}

func (s *httpSource) load(ctx context.Context) (*Bundle, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch bundle %s: %w", s.label, err)
	}
	for k, v := range s.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept", "application/gzip, application/octet-stream")
	s.mu.Lock()
	etag := s.etag
	s.mu.Unlock()
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// A *url.Error's text holds the full URL, query and all; the
		// label stands in for it.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("fetch bundle %s: %w", s.label, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified:
		if etag == "" {
			return nil, fmt.Errorf("fetch bundle %s: 304 Not Modified to a request without If-None-Match", s.label)
		}
		return nil, nil
	case resp.StatusCode != http.StatusOK:
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = " (hint: check the source's headers, e.g. Authorization)"
		case http.StatusNotFound:
			hint = " (hint: check the url)"
		}
		msg := strings.TrimSpace(string(snippet))
		if msg != "" {
			msg = ": " + msg
		}
		return nil, fmt.Errorf("fetch bundle %s: server answered %s%s%s", s.label, resp.Status, msg, hint)
	}
	if resp.ContentLength > s.opts.maxBytes() {
		return nil, fmt.Errorf("fetch bundle %s: body of %d bytes is larger than %d (hint: raise max_bytes)", s.label, resp.ContentLength, s.opts.maxBytes())
	}
	b, err := LoadArchive(resp.Body, s.label, s.opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fetch bundle %s: %w (timeout %s)", s.label, err, s.timeout)
		}
		return nil, err
	}
	s.mu.Lock()
	s.etag = resp.Header.Get("ETag")
	s.mu.Unlock()
	return b, nil
}
