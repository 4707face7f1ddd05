package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/engine"
)

type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	policyEval    prometheus.Histogram
	decisions     *prometheus.CounterVec
	tokens        *prometheus.CounterVec
	upstream      *prometheus.CounterVec
	costMicros    prometheus.Counter
	streamsActive prometheus.Gauge
	shadow        *prometheus.CounterVec
	authFailures  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_http_requests_total", Help: "Chat requests by status code.",
		}, []string{"code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tollgate_http_request_duration_seconds", Help: "Time from request to last byte.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}, []string{"stream"}),
		policyEval: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tollgate_policy_eval_duration_seconds", Help: "Policy evaluation time.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 2, 16),
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_policy_decisions_total", Help: "Policy decisions by result (allow, deny, error).",
		}, []string{"result"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_tokens_total", Help: "Tokens by kind (prompt, completion).",
		}, []string{"kind"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_upstream_requests_total", Help: "Upstream calls by provider and outcome.",
		}, []string{"provider", "outcome"}),
		costMicros: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_cost_usd_micros_total", Help: "Cost of served requests in USD micro-dollars.",
		}),
		streamsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_streams_active", Help: "Streams being relayed now.",
		}),
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_policy_shadow_evaluations_total", Help: "Shadow policy evaluations by result: same, different (from the live decision) or error.",
		}, []string{"result"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_auth_failures_total", Help: "Refused authentications by credential kind and reason.",
		}, []string{"method", "reason"}),
	}
	for _, c := range []prometheus.Collector{m.authFailures, m.shadow, m.requests, m.duration, m.policyEval, m.decisions, m.tokens, m.upstream, m.costMicros, m.streamsActive} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// specializationCollector exports what the policy's specialization cache
// did (see engine/specialize.go): how many decisions came from it, how
// many keys it built, rejected and evicted, and how many it holds.
type specializationCollector struct {
	e                                       *engine.Engine
	decisions, builds, evictions, cacheSize *prometheus.Desc
}

func newSpecializationCollector(e *engine.Engine) *specializationCollector {
	return &specializationCollector{
		e: e,
		decisions: prometheus.NewDesc("tollgate_policy_specialized_decisions_total",
			"Policy decisions by path: specialized (a cached query for the caller's stable input) or full (the bundle's whole residual).", []string{"path"}, nil),
		builds: prometheus.NewDesc("tollgate_policy_specializations_total",
			"Specializations built, by result: built (serving) or rejected (the key keeps the full evaluation; see the log).", []string{"result"}, nil),
		evictions: prometheus.NewDesc("tollgate_policy_specialization_evictions_total",
			"Specialized keys evicted to make room; raise policy.specialization_cache_mb when this grows steadily.", nil, nil),
		cacheSize: prometheus.NewDesc("tollgate_policy_specialization_cache_keys",
			"Specialized keys the current policy holds.", nil, nil),
	}
}

func (c *specializationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.decisions
	ch <- c.builds
	ch <- c.evictions
	ch <- c.cacheSize
}

func (c *specializationCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.e.SpecializationStats()
	ch <- prometheus.MustNewConstMetric(c.decisions, prometheus.CounterValue, float64(st.Hits), "specialized")
	ch <- prometheus.MustNewConstMetric(c.decisions, prometheus.CounterValue, float64(st.Misses), "full")
	ch <- prometheus.MustNewConstMetric(c.builds, prometheus.CounterValue, float64(st.Built), "built")
	ch <- prometheus.MustNewConstMetric(c.builds, prometheus.CounterValue, float64(st.Rejected), "rejected")
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.Evicted))
	ch <- prometheus.MustNewConstMetric(c.cacheSize, prometheus.GaugeValue, float64(st.Size))
}
