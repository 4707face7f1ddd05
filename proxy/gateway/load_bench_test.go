package gateway

import (
	"bytes"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/auth"
	"github.com/tollgate/tollgate/proxy/provider"
)

// The load benchmarks send the same chat request (a ~256-byte prompt to the
// simulator's echo model) once directly to the simulator and once through
// the gateway, both in this process over loopback, and report latency
// percentiles, requests per second and CPU per request for each; the
// difference is what the gateway adds. Run with `make bench`.

func benchBody() []byte {
	prompt := strings.Repeat("Summarise the quarterly report for the search team. ", 5)[:256]
	return []byte(`{"model":"echo","messages":[{"role":"user","content":"` + prompt + `"}],"max_tokens":64}`)
}

type loadTarget struct {
	name string
	url  string
	key  string
}

func startLoadTargets(b *testing.B) (direct, gw loadTarget) {
	b.Helper()
	simSrv, simURL := startSim(b)
	key, id, _, err := auth.NewKey()
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := Parse([]byte("{}"), "bench")
	if err != nil {
		b.Fatal(err)
	}
	cfg.Auth.APIKeys = []auth.KeyConfig{{ID: id, Hash: auth.HashKey(key), Subject: "bench", Team: "perf", Roles: []string{"developer"}}}
	cfg.Providers = []provider.Config{{Name: "sim", Kind: "openai", BaseURL: simURL, Models: []string{"echo"}, Timeout: "30s"}}
	cfg.Quota.Backend = "memory"
	// A limit the benchmark cannot reach, so that every request still
	// reserves and reconciles quota.
	cfg.Policy.Bundle = bundleWithData(b, "data/quota/bench.json", map[string]any{
		"keys": map[string]any{id: map[string]any{"tokens_per_minute": int64(1) << 50}},
	})
	cfg.Analytics.File = filepath.Join(b.TempDir(), "events.jsonl")
	cfg.Log.Level = "error"
	g := startGateway(b, cfg, simSrv)
	return loadTarget{"direct", simURL, ""}, loadTarget{"gateway", g.url + "/v1", key}
}

func doChat(client *http.Client, t loadTarget, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, t.url+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if t.key != "" {
		req.Header.Set("Authorization", "Bearer "+t.key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{resp.StatusCode}
	}
	return err
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "status " + http.StatusText(e.code) }

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLatency sends one request at a time, alternating direct and
// through the gateway, so both see the same machine noise; it reports the
// latency the gateway adds at p50 and p99.
func BenchmarkLatency(b *testing.B) {
	direct, gw := startLoadTargets(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	body := benchBody()
	for range 50 { // warm up connections and caches
		if err := doChat(client, direct, body); err != nil {
			b.Fatal(err)
		}
		if err := doChat(client, gw, body); err != nil {
			b.Fatal(err)
		}
	}
	d := make([]time.Duration, 0, b.N)
	g := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := doChat(client, direct, body); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := doChat(client, gw, body); err != nil {
			b.Fatal(err)
		}
		d = append(d, t1.Sub(t0))
		g = append(g, time.Since(t1))
	}
	b.StopTimer()
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	sort.Slice(g, func(i, j int) bool { return g[i] < g[j] })
	us := func(x time.Duration) float64 { return float64(x.Nanoseconds()) / 1e3 }
	b.ReportMetric(us(percentile(d, 0.5)), "direct-p50-µs")
	b.ReportMetric(us(percentile(d, 0.99)), "direct-p99-µs")
	b.ReportMetric(us(percentile(g, 0.5)), "gateway-p50-µs")
	b.ReportMetric(us(percentile(g, 0.99)), "gateway-p99-µs")
	b.ReportMetric(us(percentile(g, 0.5)-percentile(d, 0.5)), "added-p50-µs")
	b.ReportMetric(us(percentile(g, 0.99)-percentile(d, 0.99)), "added-p99-µs")
}

// BenchmarkThroughput drives each target with 16 concurrent clients and
// reports requests per second and the process CPU spent per request.
func BenchmarkThroughput(b *testing.B) {
	direct, gw := startLoadTargets(b)
	body := benchBody()
	for _, t := range []loadTarget{direct, gw} {
		b.Run(t.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			const workers = 16
			for range 50 {
				if err := doChat(client, t, body); err != nil {
					b.Fatal(err)
				}
			}
			jobs := make(chan struct{}, b.N)
			for range b.N {
				jobs <- struct{}{}
			}
			close(jobs)
			var wg sync.WaitGroup
			var mu sync.Mutex
			var firstErr error
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, t0 := cpuTime(), time.Now()
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range jobs {
						if err := doChat(client, t, body); err != nil {
							mu.Lock()
							firstErr = err
							mu.Unlock()
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed, cpu := time.Since(t0), cpuTime()-cpu0
			b.StopTimer()
			if firstErr != nil {
				b.Fatal(firstErr)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
		})
	}
}
