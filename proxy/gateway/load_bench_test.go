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

// startLoadTargets starts the simulator and two gateways in front of it: one
// as configured by default, one with policy specialization off
// ("gateway-full"), so that the benchmarks show what specialization saves.
func startLoadTargets(b *testing.B) []loadTarget {
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
	full := *cfg
	full.Policy.SpecializationCacheMB = -1
	full.Analytics.File = filepath.Join(b.TempDir(), "events-full.jsonl")
	gf := startGateway(b, &full, simSrv)
	return []loadTarget{{"direct", simURL, ""}, {"gateway", g.url + "/v1", key}, {"gateway-full", gf.url + "/v1", key}}
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
	targets := startLoadTargets(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	body := benchBody()
	for range 50 { // warm up connections and caches
		for _, t := range targets {
			if err := doChat(client, t, body); err != nil {
				b.Fatal(err)
			}
		}
	}
	ds := make([][]time.Duration, len(targets))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for i, t := range targets {
			t0 := time.Now()
			if err := doChat(client, t, body); err != nil {
				b.Fatal(err)
			}
			ds[i] = append(ds[i], time.Since(t0))
		}
	}
	b.StopTimer()
	us := func(x time.Duration) float64 { return float64(x.Nanoseconds()) / 1e3 }
	for i, t := range targets {
		sort.Slice(ds[i], func(x, y int) bool { return ds[i][x] < ds[i][y] })
		b.ReportMetric(us(percentile(ds[i], 0.5)), t.name+"-p50-µs")
		b.ReportMetric(us(percentile(ds[i], 0.99)), t.name+"-p99-µs")
		if i > 0 {
			b.ReportMetric(us(percentile(ds[i], 0.5)-percentile(ds[0], 0.5)), t.name+"-added-p50-µs")
			b.ReportMetric(us(percentile(ds[i], 0.99)-percentile(ds[0], 0.99)), t.name+"-added-p99-µs")
		}
	}
}

// BenchmarkThroughput drives each target with 16 concurrent clients and
// reports requests per second and the process CPU spent per request.
func BenchmarkThroughput(b *testing.B) {
	body := benchBody()
	for _, t := range startLoadTargets(b) {
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
