package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bulwarkapi/bulwark/internal/admin"
	"github.com/bulwarkapi/bulwark/internal/collector"
	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/dashboard"
	"github.com/bulwarkapi/bulwark/internal/event/natsbus"
	"github.com/bulwarkapi/bulwark/internal/gateway"
	"github.com/bulwarkapi/bulwark/internal/inventory"
)

// collectorAdmin is the collector's admin listener (admin.addr): health,
// Prometheus metrics, the admin API and the dashboard over the cluster's
// whole inventory, with the same token as the gateways'.
type collectorAdmin struct {
	srv      *http.Server
	timeline *dashboard.Timeline
	done     chan struct{}
}

// startCollectorAdmin listens on addr and serves col's inventory and
// findings and the consumer's and collector's counters. It fails when
// addr cannot be bound, as a gateway's admin listener does.
func startCollectorAdmin(cfg *config.Config, addr string, col *collector.Collector, cons *natsbus.Consumer, logger *slog.Logger) (*collectorAdmin, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectorMetrics{col: col, cons: cons})
	token := func() string { return cfg.Admin.Token }
	a := &collectorAdmin{timeline: dashboard.NewTimeline(0, 0), done: make(chan struct{})}
	ui, err := dashboard.New(dashboard.Options{
		Token: token, Config: func() *config.Config { return cfg }, Timeline: a.timeline,
		Logger: logger.With("component", "dashboard"), Inventory: col.Inventory, Findings: col.Store().Findings,
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	h := admin.New(admin.Options{
		Token: token, Registry: reg, Ready: func() bool { return true }, RequestID: gateway.NewRequestID, UI: ui,
		Data: admin.Data{Inventory: func() *inventory.Inventory { return col.Inventory() }, Findings: col.Store().Findings},
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen admin %s: %w", addr, err)
	}
	a.srv = &http.Server{Handler: h, ReadHeaderTimeout: cfg.Limits.ReadHeaderTimeout.D(), ReadTimeout: 10 * time.Second,
		IdleTimeout: cfg.Limits.IdleTimeout.D(), MaxHeaderBytes: int(cfg.Limits.MaxHeaderBytes),
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin listener stopped", "error", err.Error())
		}
	}()
	logger.Info("admin listening", "addr", ln.Addr().String())
	return a, nil
}

// close stops the listener, letting requests in flight finish for a while.
func (a *collectorAdmin) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
	<-a.done
}

// collectorMetrics exposes the collector's and the NATS consumer's
// counters at scrape time.
type collectorMetrics struct {
	col  *collector.Collector
	cons *natsbus.Consumer
}

func counterDesc(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }

var (
	colIngested   = counterDesc("bulwark_inventory_events_total", "Exchange events ingested into the inventory.")
	colDuplicates = counterDesc("bulwark_collector_duplicate_events_total", "Redelivered exchange events recognised and skipped.")
	colFindings   = counterDesc("bulwark_detector_findings_total", "New or updated behavioural findings.")
	colStoreErrs  = counterDesc("bulwark_inventory_store_errors_total", "Failed writes of the inventory or findings to the store (retried).")
	colCoolPub    = counterDesc("bulwark_collector_cooldowns_published_total", "Cool-down entries sent to the gateways.")
	colCoolFail   = counterDesc("bulwark_collector_cooldowns_failed_total", "Cool-down entries whose publish failed (the next full table repairs them).")
	colCoolDrop   = counterDesc("bulwark_collector_cooldowns_dropped_total", "Cool-down entries dropped because the publisher was behind.")
	colHookSent   = counterDesc("bulwark_findings_webhook_sent_total", "Findings delivered to detect.findings_webhook.")
	colHookDrop   = counterDesc("bulwark_findings_webhook_dropped_total", "Findings not delivered to detect.findings_webhook; they stay in the store.")
	consDelivered = counterDesc("bulwark_collector_nats_delivered_total", "Messages received from JetStream, redeliveries included.")
	consHandled   = counterDesc("bulwark_collector_nats_handled_total", "Events acknowledged after they were stored.")
	consBad       = counterDesc("bulwark_collector_nats_undecodable_total", "Messages that were not an event (acknowledged and skipped).")
	consFailed    = counterDesc("bulwark_collector_nats_failed_batches_total", "Batches the collector could not handle (redelivered).")
)

func (m collectorMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{colIngested, colDuplicates, colFindings, colStoreErrs, colCoolPub, colCoolFail, colCoolDrop,
		colHookSent, colHookDrop, consDelivered, consHandled, consBad, consFailed} {
		ch <- d
	}
}

func (m collectorMetrics) Collect(ch chan<- prometheus.Metric) {
	c := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	s := m.col.Stats()
	c(colIngested, s.Ingested)
	c(colDuplicates, s.Duplicates)
	c(colFindings, s.Findings)
	c(colStoreErrs, s.FlushErrors)
	c(colCoolPub, s.CoolDownsPublished)
	c(colCoolFail, s.CoolDownsFailed)
	c(colCoolDrop, s.CoolDownsDropped)
	c(colHookSent, s.WebhookSent)
	c(colHookDrop, s.WebhookDropped)
	if m.cons != nil {
		cs := m.cons.Stats()
		c(consDelivered, cs.Delivered)
		c(consHandled, cs.Handled)
		c(consBad, cs.Undecodable)
		c(consFailed, cs.FailedBatches)
	}
}
