// Package collector turns exchange events into the inventory and findings:
// it feeds batches to the inventory (internal/inventory) and the
// behavioural detectors (internal/detect), keeps both in the store
// (internal/store), and writes new findings as OCSF JSON lines for a SIEM.
//
// One node runs it in process, fed by the gateway's event bus; a cluster
// runs it as `bulwark collector`, fed from NATS JetStream, where batches
// can be delivered twice and are deduplicated by event id. Persistence runs
// on the collector's own goroutine, never on a request. In a cluster with
// detect.mode enforce it also publishes the detectors' cool-downs
// (Options.CoolDowns) for the gateways to enforce.
package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/detect"
	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/finding"
	"github.com/bulwarkapi/bulwark/internal/inventory"
	"github.com/bulwarkapi/bulwark/internal/ratelog"
	"github.com/bulwarkapi/bulwark/internal/spec"
	"github.com/bulwarkapi/bulwark/internal/store"
)

// pruneEvery is how often retention runs: hourly is ample for a
// retention measured in days.
const pruneEvery = time.Hour

const (
	// DefaultCoolDownRefresh is how often the whole active cool-down
	// table is published (Options.CoolDowns): a gateway that restarted or
	// missed a message enforces again within this.
	DefaultCoolDownRefresh = 5 * time.Second
	// coolDownQueue bounds the batches of new cool-downs waiting for the
	// publishing goroutine; beyond it they are dropped (counted), and the
	// next full table carries them.
	coolDownQueue = 64
	// coolDownLogEvery rate-limits the log of failed cool-down publishes.
	coolDownLogEvery = 30 * time.Second
)

// CoolDownPublisher sends cool-downs to the gateways
// (natsbus.CoolDownPublisher).
type CoolDownPublisher interface {
	Publish([]detect.CoolDown) error
}

// Options configures a Collector.
type Options struct {
	// Config supplies store.url, inventory and detect.
	Config *config.Config
	// Specs are the APIs' OpenAPI documents by API name.
	Specs map[string]*spec.Document
	// Dedup marks event ids in the store and drops those seen before:
	// needed when batches can be redelivered (NATS), wasted in process.
	Dedup bool
	// Logger receives flush failures and findings; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// CoolDowns, in a cluster with detect.mode enforce, sends the
	// detectors' cool-downs to the gateways: the ones a batch created or
	// extended right after the batch, and the whole active table every
	// CoolDownRefresh. It is called from one goroutine of Run, never from
	// Handle, so a slow or failing publisher never holds up ingestion.
	// Ignored unless detect.mode is enforce.
	CoolDowns CoolDownPublisher
	// CoolDownRefresh is the period of the full table (default
	// DefaultCoolDownRefresh).
	CoolDownRefresh time.Duration
}

// Collector is safe for concurrent use: Handle is called by one feeder,
// the read methods by the admin API.
type Collector struct {
	cfg    *config.Config
	inv    *inventory.Inventory
	det    *detect.Detector
	store  store.Store
	dedup  bool
	logger *slog.Logger
	now    func() time.Time

	sinkMu sync.Mutex
	sink   io.WriteCloser // OCSF findings file, nil for none
	hook   *webhook       // OCSF findings webhook, nil for none
	// emitted is the severity last sent to the sinks of each spec-diff
	// finding (shadow, zombie, ...): those are recomputed at every flush,
	// and only new ones or a changed severity are sent again.
	emitted map[string]finding.Severity

	mu        sync.Mutex // serialises Handle and Flush
	lastPrune time.Time

	coolPub     CoolDownPublisher      // nil: cool-downs stay in this process
	coolRefresh time.Duration          // period of the full table
	coolCh      chan []detect.CoolDown // new cool-downs for the publishing goroutine

	ingested, duplicates, findings, flushErrors atomic.Uint64
	// cool-down entries published, failed to publish, and dropped
	// because the queue to the publishing goroutine was full.
	coolPublished, coolFailed, coolDropped atomic.Uint64
}

// New opens the store, restores the persisted inventory and starts the
// detectors. Close releases the store.
func New(ctx context.Context, o Options) (*Collector, error) {
	cfg := o.Config
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	inv, err := inventory.New(inventory.Options{Specs: o.Specs, Hints: cfg.Inventory.PathHints})
	if err != nil {
		return nil, fmt.Errorf("collector: inventory: %w", err)
	}
	det, err := detect.New(detect.Options{
		Window:             cfg.Detect.Window.D(),
		MaxDistinctObjects: cfg.Detect.MaxDistinctObjects,
		MinSequentialSteps: cfg.Detect.MinSequentialSteps,
		CoolDown:           cfg.Detect.CoolDown.D(),
		Now:                o.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("collector: detectors: %w", err)
	}
	st, err := store.Open(ctx, cfg.Store.URL)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	c := &Collector{cfg: cfg, inv: inv, det: det, store: st, dedup: o.Dedup, logger: logger, now: now}
	if o.CoolDowns != nil && cfg.Detect.Mode == "enforce" {
		c.coolPub = o.CoolDowns
		c.coolRefresh = o.CoolDownRefresh
		if c.coolRefresh <= 0 {
			c.coolRefresh = DefaultCoolDownRefresh
		}
		c.coolCh = make(chan []detect.CoolDown, coolDownQueue)
	}
	recs, err := st.Endpoints(ctx)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("collector: restore inventory: %w", err)
	}
	eps := make([]inventory.Endpoint, 0, len(recs))
	for _, r := range recs {
		var ep inventory.Endpoint
		if err := json.Unmarshal(r.Doc, &ep); err != nil {
			logger.Warn("skipping an unreadable stored endpoint", "id", r.ID, "error", err.Error())
			continue
		}
		eps = append(eps, ep)
	}
	inv.Restore(eps)
	if f := cfg.Detect.FindingsFile; f != "" {
		w, err := os.OpenFile(f, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("collector: findings file: %w", err)
		}
		c.sink = w
	}
	if w := cfg.Detect.FindingsWebhook; w != nil {
		auth := ""
		if w.Token != "" {
			auth = w.Scheme + " " + w.Token
		}
		c.hook = newWebhook(WebhookOptions{URL: w.URL, Authorization: auth, Timeout: w.Timeout.D(), Logger: logger.With("sink", "webhook")})
	}
	return c, nil
}

// Inventory returns the live inventory.
func (c *Collector) Inventory() *inventory.Inventory { return c.inv }

// Detector returns the detectors (for the gateway's cool-down check).
func (c *Collector) Detector() *detect.Detector { return c.det }

// Store returns the store (for the admin API's findings).
func (c *Collector) Store() store.Store { return c.store }

// Stats are the collector's counters.
type Stats struct {
	Ingested, Duplicates, Findings, FlushErrors uint64
	// CoolDownsPublished, CoolDownsFailed and CoolDownsDropped count
	// cool-down entries sent to the gateways, whose publish failed, and
	// dropped because the publishing goroutine was behind (with
	// Options.CoolDowns only). Failed and dropped ones are carried by the
	// next full table.
	CoolDownsPublished, CoolDownsFailed, CoolDownsDropped uint64
	// WebhookSent and WebhookDropped count findings delivered to and
	// dropped for detect.findings_webhook.
	WebhookSent, WebhookDropped uint64
}

// Stats returns the counters.
func (c *Collector) Stats() Stats {
	s := Stats{
		Ingested: c.ingested.Load(), Duplicates: c.duplicates.Load(), Findings: c.findings.Load(), FlushErrors: c.flushErrors.Load(),
		CoolDownsPublished: c.coolPublished.Load(), CoolDownsFailed: c.coolFailed.Load(), CoolDownsDropped: c.coolDropped.Load(),
	}
	if c.hook != nil {
		s.WebhookSent, s.WebhookDropped = c.hook.sent.Load(), c.hook.dropped.Load()
	}
	return s
}

// Handle ingests one batch. With Dedup, events already seen are dropped;
// an error is returned only when deduplication cannot be done (the store
// is down), so that a redelivering feeder retries the batch.
func (c *Collector) Handle(ctx context.Context, events []event.Exchange) error {
	if len(events) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dedup {
		ids := make([]string, len(events))
		for i := range events {
			ids[i] = events[i].ID
		}
		fresh, err := c.store.MarkEvents(ctx, ids)
		if err != nil {
			return fmt.Errorf("collector: deduplicate: %w", err)
		}
		if len(fresh) < len(events) {
			keep := make(map[string]bool, len(fresh))
			for _, id := range fresh {
				keep[id] = true
			}
			kept := events[:0:0]
			for _, e := range events {
				if keep[e.ID] {
					kept = append(kept, e)
					delete(keep, e.ID) // a duplicate inside the batch counts once
				}
			}
			c.duplicates.Add(uint64(len(events) - len(kept)))
			events = kept
		}
	}
	c.inv.Ingest(events)
	c.ingested.Add(uint64(len(events)))
	if fs := c.det.Observe(events); len(fs) > 0 {
		c.queueCoolDowns(fs)
		c.report(ctx, fs)
	}
	return nil
}

// queueCoolDowns hands the cool-downs the findings of a batch created or
// extended to the publishing goroutine, or drops them (counted) when it
// is behind: Handle never waits for NATS.
func (c *Collector) queueCoolDowns(fs []finding.Finding) {
	if c.coolCh == nil {
		return
	}
	cds := c.det.CoolDownsOf(fs)
	if len(cds) == 0 {
		return
	}
	select {
	case c.coolCh <- cds:
	default:
		c.coolDropped.Add(uint64(len(cds)))
	}
}

// publishCoolDowns runs until ctx ends: it publishes each queued batch of
// new cool-downs, and the whole active table every coolRefresh (first at
// once, so that gateways catch up with a restarted collector's table as
// soon as it has one). Failures are counted and logged at most once per
// coolDownLogEvery.
func (c *Collector) publishCoolDowns(ctx context.Context) {
	t := time.NewTicker(c.coolRefresh)
	defer t.Stop()
	logLine := ratelog.Every{Interval: coolDownLogEvery}
	publish := func(cds []detect.CoolDown) {
		if len(cds) == 0 {
			return
		}
		err := c.coolPub.Publish(cds)
		if err == nil {
			c.coolPublished.Add(uint64(len(cds)))
			return
		}
		c.coolFailed.Add(uint64(len(cds)))
		if n, ok := logLine.Tick(time.Now(), uint64(len(cds))); ok {
			c.logger.Warn("publishing cool-downs to the gateways failed; the full table is sent again every refresh",
				"cool_downs", n, "refresh", c.coolRefresh.String(), "error", err.Error())
		}
	}
	publish(c.det.ActiveCoolDowns(c.now()))
	for {
		select {
		case <-ctx.Done():
			return
		case cds := <-c.coolCh:
			publish(cds)
		case <-t.C:
			publish(c.det.ActiveCoolDowns(c.now()))
		}
	}
}

// report stores detector findings and writes them to the sink.
func (c *Collector) report(ctx context.Context, fs []finding.Finding) {
	c.findings.Add(uint64(len(fs)))
	for _, f := range fs {
		if detect.Reports(f) <= 1 { // new: logged once, updates are not
			c.logger.Warn("finding", "kind", f.Kind, "severity", f.Severity.String(), "api", f.API, "endpoint", f.Endpoint,
				"subject", f.Subject, "client", f.Client, "id", f.ID)
		}
	}
	if err := c.store.UpsertFindings(ctx, fs); err != nil {
		c.flushErrors.Add(1)
		c.logger.Error("storing findings failed; they stay in memory and are reported again", "error", err.Error())
	}
	c.writeSink(fs)
}

func (c *Collector) writeSink(fs []finding.Finding) {
	if c.hook != nil {
		c.hook.Write(fs)
	}
	if c.sink == nil {
		return
	}
	c.sinkMu.Lock()
	defer c.sinkMu.Unlock()
	enc := json.NewEncoder(c.sink)
	for _, f := range fs {
		if err := enc.Encode(detect.OCSF(f)); err != nil {
			c.logger.Error("writing the findings file failed", "error", err.Error())
			return
		}
	}
}

// emitInventoryFindings sends the spec-diff findings that are new, or
// whose severity changed, to the sinks. After a restart every current one
// is new once: a SIEM deduplicates by the finding's uid.
func (c *Collector) emitInventoryFindings(fs []finding.Finding) {
	if c.sink == nil && c.hook == nil {
		return
	}
	if c.emitted == nil {
		c.emitted = make(map[string]finding.Severity)
	}
	var out []finding.Finding
	for _, f := range fs {
		if s, ok := c.emitted[f.ID]; !ok || s != f.Severity {
			c.emitted[f.ID] = f.Severity
			out = append(out, f)
		}
	}
	if len(out) > 0 {
		c.writeSink(out)
	}
}

// Flush writes the inventory and its spec-diff findings to the store and
// applies retention.
func (c *Collector) Flush(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	eps := c.inv.Endpoints()
	recs := make([]store.Record, 0, len(eps))
	for _, ep := range eps {
		doc, err := json.Marshal(ep)
		if err != nil {
			return fmt.Errorf("collector: endpoint %s: %w", ep.ID, err)
		}
		recs = append(recs, store.Record{ID: ep.ID, API: ep.API, Key: ep.Method + " " + ep.Template, LastSeen: ep.LastSeen, Doc: doc})
	}
	var errs []error
	if err := c.store.UpsertEndpoints(ctx, recs); err != nil {
		errs = append(errs, fmt.Errorf("store endpoints: %w", err))
	}
	if fs := c.inv.Findings(now, c.cfg.Inventory.OrphanWindow.D()); len(fs) > 0 {
		if err := c.store.UpsertFindings(ctx, fs); err != nil {
			errs = append(errs, fmt.Errorf("store inventory findings: %w", err))
		}
		c.emitInventoryFindings(fs)
	}
	if now.Sub(c.lastPrune) >= pruneEvery {
		if err := c.store.Prune(ctx, now.Add(-c.cfg.Inventory.Retention.D())); err != nil {
			errs = append(errs, fmt.Errorf("prune: %w", err))
		} else {
			c.lastPrune = now
		}
	}
	if len(errs) > 0 {
		c.flushErrors.Add(1)
		return errors.Join(errs...)
	}
	return nil
}

// Run flushes every inventory.flush_interval until ctx ends, then once
// more; with Options.CoolDowns it also publishes the cool-downs.
func (c *Collector) Run(ctx context.Context) {
	if c.coolPub != nil {
		pctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); c.publishCoolDowns(pctx) }()
		defer func() { cancel(); <-done }()
	}
	t := time.NewTicker(c.cfg.Inventory.FlushInterval.D())
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := c.Flush(ctx); err != nil {
				c.logger.Error("inventory flush failed; retrying at the next interval", "error", err.Error())
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := c.Flush(fctx); err != nil {
				c.logger.Error("final inventory flush failed", "error", err.Error())
			}
			cancel()
			return
		}
	}
}

// Close releases the store and the findings file. Call it after Run returned.
func (c *Collector) Close() error {
	var errs []error
	if c.sink != nil {
		errs = append(errs, c.sink.Close())
	}
	if c.hook != nil {
		errs = append(errs, c.hook.Close())
	}
	errs = append(errs, c.store.Close())
	return errors.Join(errs...)
}
