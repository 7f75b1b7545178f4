// Package gateway runs Bulwark's data plane: the client listeners (TLS,
// HTTP/2, transport limits), the admin listener, and hot reload of the
// configuration as an atomically swapped, validated snapshot.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwarkapi/bulwark/internal/pseudo"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwarkapi/bulwark/internal/admin"
	"github.com/bulwarkapi/bulwark/internal/audit"
	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/metrics"
	"github.com/bulwarkapi/bulwark/internal/stage/record"
)

// Options are what the caller provides besides the config.
type Options struct {
	// ConfigPath is reloaded on Reload and watched for changes; "" means
	// the config came from memory and cannot be reloaded from disk.
	ConfigPath string
	Logger     *slog.Logger
	Version    string
	// Watch enables reloading when the config file or a file it names changes.
	Watch bool
	// NoAudit skips opening the audit log, the inventory store and NATS,
	// and pinging Redis (bulwark check builds a gateway only to validate it).
	NoAudit bool
}

// Gateway is one running Bulwark gateway.
type Gateway struct {
	opts     Options
	logger   *slog.Logger
	metrics  *metrics.Metrics
	audit    *audit.Writer
	recorder *record.Recorder
	guard    *connGuard
	abuse    abuse
	events   *events // nil when the inventory is disabled

	snap     atomic.Pointer[snapshot]
	inFlight atomic.Int64
	ready    atomic.Bool

	reloadMu sync.Mutex
	servers  []*http.Server
	admin    *http.Server
	addrs    []net.Addr
	adminLn  net.Addr
	watcher  *watcher
	wg       sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
}

// New validates cfg into a first snapshot and opens the audit log. It
// binds nothing yet: Start does.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// The process's pseudonyms (subject, username and object-id hashes)
	// are keyed before the first exchange; a reload cannot change the key.
	pseudo.SetKey(cfg.Privacy.PseudonymSecret)
	g := &Gateway{opts: opts, logger: opts.Logger, metrics: metrics.New(opts.Version)}
	g.metrics.RegisterInFlight(func() float64 { return float64(g.inFlight.Load()) })
	g.guard = newConnGuard(func() int { return g.snap.Load().cfg.Limits.MaxConnsPerIP },
		func() { g.metrics.ConnRejected.WithLabelValues("conns_per_ip").Inc() })
	if err := g.openAbuse(cfg); err != nil {
		return nil, err
	}
	snap, err := g.compile(ctx, cfg, nil)
	if err != nil {
		g.closeAbuse()
		return nil, err
	}
	g.snap.Store(snap)
	if !opts.NoAudit && !cfg.Audit.Disabled && cfg.Audit.Path != "" {
		w, err := audit.Open(audit.Options{Path: cfg.Audit.Path, QueueSize: cfg.Audit.QueueSize, Sync: cfg.Audit.Sync, Logger: g.logger})
		if err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
		g.audit = w
		g.registerAuditMetrics()
	}
	g.recorder = record.New(g.audit, g.metrics)
	if err := g.openEvents(ctx, cfg, snap); err != nil {
		g.closeAbuse()
		if g.audit != nil {
			_ = g.audit.Close()
		}
		return nil, fmt.Errorf("inventory: %w", err)
	}
	g.metrics.ReloadTimestamp.SetToCurrentTime()
	for _, w := range cfg.Warnings {
		g.logger.Warn("config warning", "problem", w)
	}
	return g, nil
}

// Metrics returns the gateway's metrics (for tests and the demo).
func (g *Gateway) Metrics() *metrics.Metrics { return g.metrics }

// Config returns the configuration being served now.
func (g *Gateway) Config() *config.Config { return g.snap.Load().cfg }

// Start binds every listener and serves in the background.
func (g *Gateway) Start(ctx context.Context) error {
	cfg := g.snap.Load().cfg
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	lc := net.ListenConfig{}
	for i, l := range cfg.Listeners {
		ln, err := lc.Listen(ctx, "tcp", l.Addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen %s: %w", l.Addr, err)
		}
		lns = append(lns, ln)
		g.addrs = append(g.addrs, ln.Addr())
		srv := g.newServer(cfg, i)
		g.servers = append(g.servers, srv)
	}
	var adminLn net.Listener
	if !cfg.Admin.Disabled {
		ln, err := lc.Listen(ctx, "tcp", cfg.Admin.Addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen admin %s: %w", cfg.Admin.Addr, err)
		}
		ui, err := g.dashboard()
		if err != nil {
			closeAll()
			_ = ln.Close()
			return fmt.Errorf("dashboard: %w", err)
		}
		adminLn = ln
		g.adminLn = ln.Addr()
		g.admin = &http.Server{
			Handler: admin.New(admin.Options{
				Token:     func() string { return g.snap.Load().cfg.Admin.Token },
				Registry:  g.metrics.Registry,
				Ready:     g.ready.Load,
				RequestID: newRequestID,
				Data:      g.adminData(),
				UI:        ui,
			}),
			ReadHeaderTimeout: cfg.Limits.ReadHeaderTimeout.D(),
			ReadTimeout:       10 * time.Second,
			IdleTimeout:       cfg.Limits.IdleTimeout.D(),
			MaxHeaderBytes:    int(cfg.Limits.MaxHeaderBytes),
			ErrorLog:          slog.NewLogLogger(g.logger.Handler(), slog.LevelDebug),
		}
	}
	for i, ln := range lns {
		srv := g.servers[i]
		gl := &guardListener{Listener: ln, guard: g.guard}
		tlsOn := cfg.Listeners[i].TLS != nil
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			var err error
			if tlsOn {
				err = srv.ServeTLS(gl, "", "")
			} else {
				err = srv.Serve(gl)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.logger.Error("listener stopped", "addr", ln.Addr().String(), "error", err.Error())
			}
		}()
		if tlsOn {
			g.logger.Info("listening", "addr", ln.Addr().String(), "tls", true, "client_auth", cfg.Listeners[i].TLS.ClientAuth)
		} else {
			g.logger.Warn("listening on plain HTTP (insecure: true)", "addr", ln.Addr().String())
		}
	}
	if adminLn != nil {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := g.admin.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.logger.Error("admin listener stopped", "error", err.Error())
			}
		}()
		g.logger.Info("admin listening", "addr", adminLn.Addr().String())
	}
	if g.opts.Watch && g.opts.ConfigPath != "" {
		w, err := newWatcher(g)
		if err != nil {
			g.logger.Warn("config file watching is off; reload with SIGHUP", "error", err.Error())
		} else {
			g.watcher = w
		}
	}
	g.ready.Store(true)
	return nil
}

// newServer builds the http.Server of listener i. Timeouts and header
// limits are fixed for the life of the server; a reload that changes them
// is logged as needing a restart.
func (g *Gateway) newServer(cfg *config.Config, i int) *http.Server {
	l := cfg.Limits
	srv := &http.Server{
		Handler:           listenerHandler{g: g, idx: i},
		ReadHeaderTimeout: l.ReadHeaderTimeout.D(),
		ReadTimeout:       l.ReadTimeout.D(),
		WriteTimeout:      l.WriteTimeout.D(),
		IdleTimeout:       l.IdleTimeout.D(),
		// The handler answers 431 as problem+json at the configured limit;
		// net/http's own plain-text 431 is only a backstop at twice that.
		MaxHeaderBytes: 2 * int(l.MaxHeaderBytes),
		ErrorLog:       slog.NewLogLogger(g.logger.Handler(), slog.LevelDebug),
		ConnState:      g.connState,
		HTTP2: &http.HTTP2Config{
			// 250 concurrent streams per connection, as nginx and Go's default:
			// with the in-flight cap this bounds what one client can queue.
			MaxConcurrentStreams:      250,
			MaxDecoderHeaderTableSize: 4096,
			MaxEncoderHeaderTableSize: 4096,
		},
	}
	if cfg.Listeners[i].TLS != nil {
		idx := i
		srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"},
			// Each handshake takes the certificate, client CA pool and
			// versions of the current snapshot: a reload rotates them
			// without dropping a connection.
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return g.snap.Load().tls[idx], nil
			},
		}
	}
	return srv
}

func (g *Gateway) connState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		g.metrics.Connections.Inc()
	case http.StateClosed, http.StateHijacked:
		g.metrics.Connections.Dec()
	}
}

// Addrs returns the bound addresses of the client listeners, in config order.
func (g *Gateway) Addrs() []net.Addr { return g.addrs }

// AdminAddr returns the bound admin address, or nil.
func (g *Gateway) AdminAddr() net.Addr { return g.adminLn }

// Shutdown stops accepting, drains in-flight requests for up to the
// configured shutdown timeout, then flushes and closes the audit log. Only
// the first call does the work; later calls return its result.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.shutdownOnce.Do(func() { g.shutdownErr = g.shutdown(ctx) })
	return g.shutdownErr
}

func (g *Gateway) shutdown(ctx context.Context) error {
	g.ready.Store(false)
	if g.watcher != nil {
		g.watcher.close()
	}
	cfg := g.snap.Load().cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.Limits.ShutdownTimeout.D())
	defer cancel()
	var errs []error
	for _, srv := range g.servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("drain listener: %w", err))
			_ = srv.Close()
		}
	}
	if g.admin != nil {
		if err := g.admin.Shutdown(ctx); err != nil {
			_ = g.admin.Close()
		}
	}
	g.wg.Wait()
	for _, p := range g.snap.Load().proxies {
		p.Close()
	}
	closeUnused(g.snap.Load().providers, nil)
	retireWAFs(g.snap.Load().wafs, nil, 0)
	g.closeAbuse()
	g.closeEvents()
	if g.audit != nil {
		if err := g.audit.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close audit log: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Reload loads the config file again and, if it is valid whole, swaps it
// in. An invalid file is rejected, logged and counted; the old config
// keeps serving.
func (g *Gateway) Reload(ctx context.Context, reason string) error {
	if g.opts.ConfigPath == "" {
		return errors.New("reload: the config was not loaded from a file")
	}
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	old := g.snap.Load()
	cfg, err := config.Load(g.opts.ConfigPath)
	if err == nil {
		var snap *snapshot
		snap, err = g.compile(ctx, cfg, old)
		if err == nil {
			g.warnRestartOnly(old.cfg, cfg)
			g.snap.Store(snap)
			closeUnused(old.providers, snap.providers)
			retireWAFs(old.wafs, snap.wafs, wafRetireDelay)
			for name, p := range old.proxies {
				if snap.proxies[name] != p {
					p.Close()
				}
			}
			if g.watcher != nil {
				g.watcher.setFiles(snap.files)
			}
			g.metrics.Reloads.WithLabelValues("success").Inc()
			g.metrics.ReloadTimestamp.SetToCurrentTime()
			g.logger.Info("config reloaded", "reason", reason, "apis", len(cfg.APIs))
			for _, w := range cfg.Warnings {
				g.logger.Warn("config warning", "problem", w)
			}
			return nil
		}
	}
	g.metrics.Reloads.WithLabelValues("failure").Inc()
	var ce config.Errors
	if errors.As(err, &ce) {
		problems := make([]string, len(ce))
		for i, e := range ce {
			problems[i] = e.Error()
		}
		g.logger.Error("config reload rejected; the previous config keeps serving", "reason", reason, "problems", problems)
	} else {
		g.logger.Error("config reload rejected; the previous config keeps serving", "reason", reason, "error", err.Error())
	}
	return err
}

// warnRestartOnly logs settings that a reload cannot apply to running
// servers.
func (g *Gateway) warnRestartOnly(old, cur *config.Config) {
	if len(old.Listeners) != len(cur.Listeners) {
		g.logger.Warn("listeners were added or removed: restart to apply")
	} else {
		for i := range old.Listeners {
			if old.Listeners[i].Addr != cur.Listeners[i].Addr || (old.Listeners[i].TLS == nil) != (cur.Listeners[i].TLS == nil) {
				g.logger.Warn("listener address or TLS on/off changed: restart to apply", "listener", i)
			}
		}
	}
	ol, cl := old.Limits, cur.Limits
	if ol.ReadHeaderTimeout != cl.ReadHeaderTimeout || ol.ReadTimeout != cl.ReadTimeout || ol.WriteTimeout != cl.WriteTimeout ||
		ol.IdleTimeout != cl.IdleTimeout {
		g.logger.Warn("limits timeouts changed: restart to apply (header, body and in-flight limits apply now)")
	}
	if old.Cluster.RedisURL != cur.Cluster.RedisURL || old.Cluster.RedisTimeout != cur.Cluster.RedisTimeout || old.Cluster.RedisFallback != cur.Cluster.RedisFallback {
		g.logger.Warn("cluster.redis_url, redis_timeout or redis_fallback changed: restart to apply")
	}
	// inventory.bodies is read by the observe stage, rebuilt on reload.
	oi, ci := old.Inventory, cur.Inventory
	oi.Bodies, ci.Bodies = config.InventoryBodies{}, config.InventoryBodies{}
	if !reflect.DeepEqual(oi, ci) || old.Detect != cur.Detect || old.Store != cur.Store ||
		old.Cluster.NATSURL != cur.Cluster.NATSURL || old.Cluster.NATSStream != cur.Cluster.NATSStream || old.Cluster.NATSSubject != cur.Cluster.NATSSubject ||
		old.Cluster.NATSCoolDownSubject != cur.Cluster.NATSCoolDownSubject {
		g.logger.Warn("store, inventory, detect or cluster.nats_* changed: restart to apply (the event path is built once)")
	}
	if old.Admin.Addr != cur.Admin.Addr || old.Admin.Disabled != cur.Admin.Disabled {
		g.logger.Warn("admin listener address changed: restart to apply")
	}
	if !reflect.DeepEqual(old.Audit, cur.Audit) {
		g.logger.Warn("audit settings changed: restart to apply")
	}
	if old.Privacy != cur.Privacy {
		g.logger.Warn("privacy.pseudonym_secret changed: restart every gateway and collector to apply (pseudonyms made under the old secret do not match new ones)")
	}
}

func (g *Gateway) registerAuditMetrics() {
	a := g.audit
	g.metrics.Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "bulwark_audit_records_total", Help: "Audit records written."}, func() float64 { return float64(a.Stats().Written) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "bulwark_audit_blocked_total", Help: "Audit writes that waited for a full queue."}, func() float64 { return float64(a.Stats().Blocked) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "bulwark_audit_errors_total", Help: "Audit write errors (the records stay queued or are retried)."}, func() float64 { return float64(a.Stats().Errors) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "bulwark_audit_dropped_total", Help: "Audit records dropped (written after close)."}, func() float64 { return float64(a.Stats().Dropped) }),
	)
}
