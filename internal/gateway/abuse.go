package gateway

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	bf "github.com/bulwarkapi/bulwark/internal/bruteforce"
	"github.com/bulwarkapi/bulwark/internal/cluster"
	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/dashboard"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/policy"
	rl "github.com/bulwarkapi/bulwark/internal/ratelimit"
	"github.com/bulwarkapi/bulwark/internal/spec"
	stagebf "github.com/bulwarkapi/bulwark/internal/stage/bruteforce"
	stagerl "github.com/bulwarkapi/bulwark/internal/stage/ratelimit"
	stagethrottle "github.com/bulwarkapi/bulwark/internal/stage/throttle"
)

// abuse holds the state of abuse protection that outlives a snapshot:
// counters must survive a reload, or a reload would hand every client a
// fresh burst.
type abuse struct {
	redis  *cluster.Redis // nil on a single node
	local  rl.LocalStores
	shared *rl.Failover // nil on a single node
	logins bf.Store     // brute-force counters: local, or Redis with local fallback
}

// openAbuse builds the stores once, when the gateway is created.
func (g *Gateway) openAbuse(cfg *config.Config) error {
	g.metrics.Registry.MustRegister(throttleCollector{g})
	g.abuse.local = rl.LocalStores{Local: rl.NewLocal(rl.LocalOptions{}), LocalQuotas: rl.NewLocalQuotas(rl.LocalQuotaOptions{})}
	bfLocal := bf.NewLocal(bf.LocalOptions{})
	g.abuse.logins = bfLocal
	if cfg.Cluster.RedisURL == "" {
		return nil
	}
	g.metrics.Registry.MustRegister(g.metrics.RedisUp)
	g.metrics.RedisUp.Set(1)
	r, err := cluster.OpenRedis(cfg.Cluster.RedisURL, cluster.Options{
		Timeout: cfg.Cluster.RedisTimeout.D(),
		Logger:  g.logger.With("component", "redis"),
		OnState: func(up bool) {
			if up {
				g.metrics.RedisUp.Set(1)
			} else {
				g.metrics.RedisUp.Set(0)
			}
		},
		OnError: g.metrics.RedisErrors.Inc,
	})
	if err != nil {
		return err
	}
	g.abuse.redis = r
	g.abuse.shared = rl.NewFailover(rl.NewRedis(r.Client, rl.RedisOptions{}), g.abuse.local, r,
		fallbackPolicy(cfg.Cluster.RedisFallback),
		func(error) { g.metrics.Fallbacks.WithLabelValues("ratelimit").Inc() })
	g.abuse.logins = bf.NewFailover(bf.NewRedis(r.Client, ""), bfLocal, r,
		func(error) { g.metrics.Fallbacks.WithLabelValues("brute_force").Inc() })
	// One ping at start tells the operator at once whether Redis answers;
	// a failure is not fatal: the fallback serves until it does.
	if g.opts.NoAudit {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*cluster.DefaultTimeout)
	defer cancel()
	if err := r.Ping(ctx); err == nil {
		g.logger.Info("redis connected: rate limits are shared by every replica", "redis", dashboard.RedactURL(cfg.Cluster.RedisURL))
	}
	return nil
}

func fallbackPolicy(s string) rl.FallbackPolicy {
	switch s {
	case "open":
		return rl.FallbackOpen
	case "closed":
		return rl.FallbackClosed
	}
	return rl.FallbackLocal
}

// closeAbuse releases the Redis connections.
func (g *Gateway) closeAbuse() {
	if g.abuse.redis != nil {
		_ = g.abuse.redis.Close()
	}
}

// rateStores returns the store rate limits and quotas count in.
func (g *Gateway) rateStores() (rl.Store, rl.QuotaStore) {
	if g.abuse.shared != nil {
		return g.abuse.shared, g.abuse.shared
	}
	return g.abuse.local, g.abuse.local
}

// addRateLimits builds the rate-limit stages of one API: limits keyed by
// client address or operation run before authentication (pre), the
// others after it (post).
func (g *Gateway) addRateLimits(pre, post map[string]pipeline.Stage, env *policy.Env, a config.API, doc *spec.Document, fail func(string, error), p string) {
	if len(a.RateLimits) == 0 {
		return
	}
	store, quotas := g.rateStores()
	o := stagerl.Options{API: a.Name, Limits: a.RateLimits, Spec: doc, Env: env, Store: store, Quotas: quotas, Phase: stagerl.BeforeAuth}
	before, err := stagerl.New(o)
	if err != nil {
		failLocated(fail, p, "rate_limits", err)
		return
	}
	o.Phase = stagerl.AfterAuth
	after, err := stagerl.New(o)
	if err != nil {
		failLocated(fail, p, "rate_limits", err)
		return
	}
	if !before.Empty() {
		pre[a.Name] = before
	}
	if !after.Empty() {
		post[a.Name] = after
	}
}

// fieldError is the located error of a stage's config (authz, ratelimit,
// brute_force): a path under the API, and the problem.
type fieldError interface {
	error
	Field() string
	Unwrap() error
}

// failLocated reports each located problem of err at the API's path plus
// its own, and anything else at p.section.
func failLocated(fail func(string, error), p, section string, err error) {
	located := false
	for _, e := range unjoin(err) {
		var fe fieldError
		if errors.As(e, &fe) {
			fail(p+"."+fe.Field(), fe.Unwrap())
			located = true
		}
	}
	if !located {
		fail(p+"."+section, err)
	}
}

// addThrottle builds the throttle stage of one API, keeping the previous
// snapshot's limiter when the block did not change: its queue, in-flight
// count and learned latency carry over a reload.
func (g *Gateway) addThrottle(stages map[string]pipeline.Stage, kept map[string]*stagethrottle.Stage, a config.API, prev *snapshot, fail func(string, error), p string) {
	t := a.Throttle
	if t == nil {
		return
	}
	monitor := a.Mode == "monitor"
	if prev != nil {
		if old := prev.throttles[a.Name]; old != nil && old.Config() == *t && old.Monitor() == (monitor || t.Mode == "monitor") {
			stages[a.Name], kept[a.Name] = old, old
			return
		}
	}
	st, err := stagethrottle.New(*t, monitor)
	if err != nil {
		fail(p+".throttle", err)
		return
	}
	stages[a.Name], kept[a.Name] = st, st
}

// throttleCollector reports the throttles of the snapshot being served
// at scrape time, so a reload needs no metric bookkeeping.
type throttleCollector struct{ g *Gateway }

var (
	throttleLimitDesc = prometheus.NewDesc("bulwark_throttle_limit",
		"Current concurrency limit of an API's throttle (below max_concurrency while the adaptive limit backs off).", []string{"api"}, nil)
	throttleInFlightDesc = prometheus.NewDesc("bulwark_throttle_in_flight",
		"Requests holding a throttle slot now, by API.", []string{"api"}, nil)
	throttleQueuedDesc = prometheus.NewDesc("bulwark_throttle_queued",
		"Requests waiting for a throttle slot now, by API.", []string{"api"}, nil)
)

func (c throttleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- throttleLimitDesc
	ch <- throttleInFlightDesc
	ch <- throttleQueuedDesc
}

func (c throttleCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.g.snap.Load()
	if snap == nil {
		return
	}
	for api, st := range snap.throttles {
		s := st.Limiter().Stats()
		ch <- prometheus.MustNewConstMetric(throttleLimitDesc, prometheus.GaugeValue, float64(s.Limit), api)
		ch <- prometheus.MustNewConstMetric(throttleInFlightDesc, prometheus.GaugeValue, float64(s.InFlight), api)
		ch <- prometheus.MustNewConstMetric(throttleQueuedDesc, prometheus.GaugeValue, float64(s.Queued), api)
	}
}

// addBruteForce builds the login protection of one API.
func (g *Gateway) addBruteForce(req map[string]pipeline.Stage, resp map[string]pipeline.ResponseStage, env *policy.Env, a config.API, doc *spec.Document, fail func(string, error), p string) {
	if a.BruteForce == nil {
		return
	}
	api := a.Name
	st, err := stagebf.New(stagebf.Options{API: api, Config: *a.BruteForce, Spec: doc, Env: env, Store: g.abuse.logins,
		Monitor: a.Mode == "monitor", Logger: g.logger,
		OnAlert: func(reason string) { g.metrics.BruteForceAlerts.WithLabelValues(api, reason).Inc() }})
	if err != nil {
		failLocated(fail, p, "brute_force", err)
		return
	}
	req[api], resp[api] = st, st
}
