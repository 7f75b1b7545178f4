// Package metrics holds Bulwark's Prometheus metrics on a registry of its own
// (never the global one), served by the admin listener.
//
// Label values are bounded: api names come from config, stages and reasons
// from code, status codes from a fixed range. Nothing from a request (path,
// host, identity) ever becomes a label.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// latencyBuckets span 50µs to 10s: the gateway's own stages live in the
// microseconds, upstreams in the milliseconds to seconds.
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// stageBuckets are finer: a stage costs microseconds.
var stageBuckets = []float64{
	0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005,
	0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01, 0.1,
}

// Metrics is the set of gateway metrics.
type Metrics struct {
	Registry *prometheus.Registry

	Requests         *prometheus.CounterVec   // api, status, outcome
	Decisions        *prometheus.CounterVec   // api, stage, action, reason, enforced
	RequestDuration  *prometheus.HistogramVec // api
	StageDuration    *prometheus.HistogramVec // stage
	UpstreamDuration *prometheus.HistogramVec // api, result
	UpstreamRetries  *prometheus.CounterVec   // api
	BreakerOpen      *prometheus.GaugeVec     // api
	Connections      prometheus.Gauge
	ConnRejected     *prometheus.CounterVec // reason
	Reloads          *prometheus.CounterVec // outcome
	ReloadTimestamp  prometheus.Gauge
	Panics           prometheus.Counter
	KeySetFetches    *prometheus.CounterVec // provider, outcome
	AuthCache        *prometheus.CounterVec // provider, result
	IdentityDepErrs  *prometheus.CounterVec // provider
	Info             *prometheus.GaugeVec   // version
	RedisUp          prometheus.Gauge
	RedisErrors      prometheus.Counter
	Fallbacks        *prometheus.CounterVec // component
	BruteForceAlerts *prometheus.CounterVec // api, reason
}

// New registers every metric on a fresh registry, with the Go runtime and
// process collectors.
func New(version string) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_requests_total",
			Help: "Requests handled, by API, status code and outcome (passed, stopped, monitored).",
		}, []string{"api", "status", "outcome"}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_decisions_total",
			Help: "Stage decisions recorded on exchanges, by stage, action and reason; enforced=false is monitor mode.",
		}, []string{"api", "stage", "action", "reason", "enforced"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulwark_request_duration_seconds",
			Help:    "Time from request received to response written, by API.",
			Buckets: latencyBuckets,
		}, []string{"api"}),
		StageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulwark_stage_duration_seconds",
			Help:    "Time spent in each pipeline stage.",
			Buckets: stageBuckets,
		}, []string{"stage"}),
		UpstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulwark_upstream_duration_seconds",
			Help:    "Time to the upstream's response headers (including retries), by API and result.",
			Buckets: latencyBuckets,
		}, []string{"api", "result"}),
		UpstreamRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_upstream_retries_total",
			Help: "Retries of idempotent requests after a connection error.",
		}, []string{"api"}),
		BreakerOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_upstream_circuit_open",
			Help: "1 while the API's upstream circuit breaker is open.",
		}, []string{"api"}),
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulwark_open_connections",
			Help: "Client connections open now.",
		}),
		ConnRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_rejected_total",
			Help: "Connections or requests refused by the connection guard, by reason.",
		}, []string{"reason"}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_config_reloads_total",
			Help: "Configuration reloads by outcome (success, failure).",
		}, []string{"outcome"}),
		ReloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulwark_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last configuration that was loaded successfully.",
		}),
		Panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_panics_recovered_total",
			Help: "Panics recovered while handling a request (each answered 500).",
		}),
		KeySetFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_jwks_fetches_total",
			Help: "JWKS fetches by provider and outcome (ok, unchanged, error: the last good key set keeps serving).",
		}, []string{"provider", "outcome"}),
		AuthCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_auth_cache_total",
			Help: "Verified-token and introspection cache lookups by provider and result (hit, miss).",
		}, []string{"provider", "result"}),
		IdentityDepErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_identity_dependency_errors_total",
			Help: "Failures of an endpoint an identity provider depends on (JWKS, introspection).",
		}, []string{"provider"}),
		RedisUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulwark_redis_up",
			Help: "1 while the cluster Redis answers, 0 while limits are decided by the fallback (absent without cluster.redis_url).",
		}),
		RedisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_redis_errors_total",
			Help: "Failed Redis commands (timeouts, refused connections).",
		}),
		Fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_cluster_fallback_total",
			Help: "Decisions made by the fallback (cluster.redis_fallback) because Redis was unavailable, by component (ratelimit, brute_force).",
		}, []string{"component"}),
		BruteForceAlerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_brute_force_alerts_total",
			Help: "Credential-stuffing and distributed brute-force alerts raised, by API and reason.",
		}, []string{"api", "reason"}),
		Info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_build_info",
			Help: "Always 1; the version label says which build runs.",
		}, []string{"version"}),
	}
	r.MustRegister(m.Requests, m.Decisions, m.RequestDuration, m.StageDuration,
		m.UpstreamDuration, m.UpstreamRetries, m.BreakerOpen, m.Connections,
		m.ConnRejected, m.Reloads, m.ReloadTimestamp, m.Panics, m.Info,
		m.KeySetFetches, m.AuthCache, m.IdentityDepErrs,
		m.RedisErrors, m.Fallbacks, m.BruteForceAlerts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, o := range []string{"success", "failure"} {
		m.Reloads.WithLabelValues(o)
	}
	m.Info.WithLabelValues(version).Set(1)
	return m
}

// RegisterInFlight exposes the gateway's own in-flight counter, so the
// request path keeps one counter instead of a counter and a gauge.
func (m *Metrics) RegisterInFlight(n func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bulwark_in_flight_requests",
		Help: "Requests being handled now.",
	}, n))
}

// ObserveStage implements pipeline.StageTimer.
func (m *Metrics) ObserveStage(stage string, d time.Duration) {
	m.StageDuration.WithLabelValues(stage).Observe(d.Seconds())
}

// UpstreamRoundTrip implements upstream.Observer.
func (m *Metrics) UpstreamRoundTrip(api string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.UpstreamDuration.WithLabelValues(api, result).Observe(d.Seconds())
}

// UpstreamRetry implements upstream.Observer.
func (m *Metrics) UpstreamRetry(api string) { m.UpstreamRetries.WithLabelValues(api).Inc() }

// BreakerState implements upstream.Observer.
func (m *Metrics) BreakerState(api string, open bool) {
	v := 0.0
	if open {
		v = 1
	}
	m.BreakerOpen.WithLabelValues(api).Set(v)
}

// KeySetFetch implements identity.Observer.
func (m *Metrics) KeySetFetch(provider, outcome string) {
	m.KeySetFetches.WithLabelValues(provider, outcome).Inc()
}

// CacheLookup implements identity.Observer.
func (m *Metrics) CacheLookup(provider string, hit bool) {
	r := "miss"
	if hit {
		r = "hit"
	}
	m.AuthCache.WithLabelValues(provider, r).Inc()
}

// DependencyError implements identity.Observer.
func (m *Metrics) DependencyError(provider string) {
	m.IdentityDepErrs.WithLabelValues(provider).Inc()
}

// StatusLabel returns the label for a status code without allocating for
// the common codes.
func StatusLabel(code int) string {
	if code >= 100 && code < 600 {
		return statusLabels[code]
	}
	return "other"
}

var statusLabels = func() [600]string {
	var s [600]string
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()
