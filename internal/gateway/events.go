package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwarkapi/bulwark/internal/admin"
	"github.com/bulwarkapi/bulwark/internal/collector"
	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/dashboard"
	"github.com/bulwarkapi/bulwark/internal/detect"
	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/event/natsbus"
	"github.com/bulwarkapi/bulwark/internal/finding"
	"github.com/bulwarkapi/bulwark/internal/inventory"
	"github.com/bulwarkapi/bulwark/internal/ratelog"
	"github.com/bulwarkapi/bulwark/internal/stage/record"
	"github.com/bulwarkapi/bulwark/internal/store"
)

// publishLogEvery rate-limits the log line of failed NATS publishes.
const publishLogEvery = 10 * time.Second

// events is the gateway's side of the inventory: the bus every exchange
// event goes through, and either the in-process collector (one node) or
// the NATS publisher (a cluster, whose collector runs elsewhere). In a
// cluster with detect.mode enforce it also holds the cool-downs the
// collector sends.
type events struct {
	bus      *event.Bus
	timeline *dashboard.Timeline // traffic and blocks over time, for the dashboard
	// col is the in-process collector (one node) once its store opened;
	// nil in a cluster, and until then.
	col atomic.Pointer[collector.Collector]
	// publisher is set once NATS answered (a cluster); nil on one node
	// and, in a cluster, until the first connection succeeds.
	publisher atomic.Pointer[natsbus.Publisher]
	coolDowns *detect.CoolDownTable       // the collector's cool-downs; nil unless a cluster in enforce mode
	coolSub   *natsbus.CoolDownSubscriber // feeds coolDowns
	cancel    context.CancelFunc
	busDone   chan struct{}
	runDone   chan struct{}
	connDone  chan struct{}      // closed when connectPublisher has returned
	pending   *collector.Options // a collector still to open (its store failed at start)

	mu                sync.Mutex
	publishLog        ratelog.Every // failed NATS publishes
	publishFailedEvts uint64        // events in batches NATS did not take
}

// openEvents starts the event path unless the inventory is disabled.
func (g *Gateway) openEvents(ctx context.Context, cfg *config.Config, snap *snapshot) error {
	if cfg.Inventory.Disabled || g.opts.NoAudit {
		return nil
	}
	ev := &events{bus: event.NewBus(event.Options{}), timeline: dashboard.NewTimeline(0, 0), publishLog: ratelog.Every{Interval: publishLogEvery}}
	ev.bus.Subscribe(func(_ context.Context, batch []event.Exchange) { ev.timeline.Add(batch) })
	var internal []netip.Prefix
	for _, s := range cfg.Inventory.InternalNetworks {
		if p, err := config.ParsePrefix(s); err == nil {
			internal = append(internal, p)
		}
	}
	host, _ := os.Hostname()
	g.recorder.WithEvents(record.EventOptions{Gateway: host, Internal: internal, Publish: ev.bus.Publish, Steps: record.NewSteps()})

	runCtx, cancel := context.WithCancel(context.Background())
	ev.cancel = cancel
	ev.connDone = make(chan struct{})
	if cfg.Cluster.NATSURL != "" {
		// The inventory's transport never keeps the gateway from serving:
		// when NATS does not answer at start, events are dropped (counted)
		// while the publisher keeps trying in the background.
		go func() { defer close(ev.connDone); g.connectPublisher(runCtx, cfg, ev) }()
		ev.bus.Subscribe(func(ctx context.Context, batch []event.Exchange) { g.publishBatch(ctx, ev, batch) })
		if cfg.Detect.Mode == "enforce" {
			g.subscribeCoolDowns(cfg, ev)
		}
	} else {
		close(ev.connDone)
		// The store never keeps the gateway from serving either: when it
		// does not open (PostgreSQL down), events are dropped (counted)
		// while the collector keeps trying in the background.
		o := collector.Options{Config: cfg, Specs: snap.specs, Logger: g.logger.With("component", "inventory")}
		if c, err := collector.New(ctx, o); err == nil {
			ev.col.Store(c)
		} else {
			g.logger.Error("the inventory store does not open: exchange events are dropped (bulwark_events_dropped_total) until it does; the gateway serves on",
				"store", dashboard.RedactURL(cfg.Store.URL), "error", err.Error())
			ev.pending = &o
		}
		ev.bus.Subscribe(func(ctx context.Context, batch []event.Exchange) {
			if c := ev.col.Load(); c != nil {
				_ = c.Handle(ctx, batch)
				return
			}
			ev.mu.Lock()
			ev.publishFailedEvts += uint64(len(batch))
			ev.mu.Unlock()
		})
	}
	ev.busDone, ev.runDone = make(chan struct{}), make(chan struct{})
	go func() { defer close(ev.busDone); ev.bus.Run(runCtx) }()
	go func() {
		defer close(ev.runDone)
		c := ev.col.Load()
		if c == nil && ev.pending != nil {
			c = g.openCollector(runCtx, ev)
		}
		if c != nil {
			c.Run(runCtx)
		}
	}()
	g.events = ev
	g.metrics.Registry.MustRegister(eventsCollector{ev})
	return nil
}

// subscribeCoolDowns makes the gateway enforce the cool-downs the
// cluster's collector decides. Nothing here stops the gateway from
// serving: while NATS is unreachable (at start or later) the connection
// retries in the background and the table keeps what it has until each
// entry ends; a gateway that never heard from the collector enforces
// nothing. The collector sends its whole table every few seconds, so a
// (re)connected gateway catches up.
func (g *Gateway) subscribeCoolDowns(cfg *config.Config, ev *events) {
	log := g.logger.With("component", "cooldowns")
	tab := detect.NewCoolDownTable(0, nil)
	sub, err := natsbus.SubscribeCoolDowns(cfg.Cluster.NATSURL, natsbus.CoolDownOptions{
		Subject: cfg.Cluster.NATSCoolDownSubject, Logger: log}, func(cds []detect.CoolDown) { tab.Apply(cds) })
	if err != nil {
		log.Error("cannot subscribe to the collector's cool-downs; this gateway enforces none", "subject", cfg.Cluster.NATSCoolDownSubject, "error", err.Error())
		return
	}
	if !sub.Connected() {
		log.Warn("NATS not reachable for cool-downs yet; retrying in the background, enforcing none until then", "subject", cfg.Cluster.NATSCoolDownSubject)
	}
	ev.coolDowns, ev.coolSub = tab, sub
}

// openCollector retries opening the in-process collector, whose store
// failed at start, until it opens or ctx ends; nil when ctx ended first.
func (g *Gateway) openCollector(ctx context.Context, ev *events) *collector.Collector {
	var c *collector.Collector
	n, ok := retry(ctx, func() (err error) { c, err = collector.New(ctx, *ev.pending); return err })
	if !ok {
		return nil
	}
	ev.col.Store(c)
	g.logger.Info("the inventory store opened: exchange events are recorded again", "attempts", n+1)
	return c
}

// connectPublisher creates the NATS publisher (connection and stream),
// retrying until it succeeds or ctx ends. The first failure is an error
// in the log; events published meanwhile are dropped and counted.
func (g *Gateway) connectPublisher(ctx context.Context, cfg *config.Config, ev *events) {
	log := g.logger.With("component", "nats")
	connect := func() (p *natsbus.Publisher, err error) {
		return natsbus.NewPublisher(ctx, cfg.Cluster.NATSURL, natsbus.PublisherOptions{
			Stream: cfg.Cluster.NATSStream, Subject: cfg.Cluster.NATSSubject, Logger: log})
	}
	p, err := connect()
	if err != nil {
		log.Error("NATS does not answer: exchange events are dropped (bulwark_events_dropped_total) until it does; the gateway serves on",
			"url", dashboard.RedactURL(cfg.Cluster.NATSURL), "error", err.Error())
		n, ok := retry(ctx, func() (err error) { p, err = connect(); return err })
		if !ok {
			return
		}
		log.Info("NATS answers: exchange events are published again", "attempts", n+1)
	}
	ev.publisher.Store(p)
}

// retryMax bounds the wait between attempts to reach NATS, or the
// inventory store, after a failure at start.
const retryMax = 5 * time.Second

// retry calls try after 250ms, then at doubling intervals up to
// retryMax, until it succeeds or ctx ends; it returns how many calls it
// made and whether the last succeeded.
func retry(ctx context.Context, try func() error) (int, bool) {
	wait := 250 * time.Millisecond
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return n - 1, false
		case <-time.After(wait):
		}
		if try() == nil {
			return n, true
		}
		wait = min(2*wait, retryMax)
	}
}

// publishBatch sends a batch to NATS; a failure drops the batch (counted
// and logged at most every publishLogEvery): requests never wait for NATS.
func (g *Gateway) publishBatch(ctx context.Context, ev *events, batch []event.Exchange) {
	pub := ev.publisher.Load()
	if pub == nil { // not connected yet: connectPublisher logged it
		ev.mu.Lock()
		ev.publishFailedEvts += uint64(len(batch))
		ev.mu.Unlock()
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := pub.PublishBatch(pctx, batch)
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if err == nil {
		return
	}
	ev.publishFailedEvts += uint64(len(batch))
	if n, ok := ev.publishLog.Tick(time.Now(), uint64(len(batch))); ok {
		g.logger.Warn("publishing exchange events to NATS failed; the batches are dropped", "events", n, "error", err.Error())
	}
}

// closeEvents drains the bus, then stops the collector (final flush) or
// the publisher.
func (g *Gateway) closeEvents() {
	ev := g.events
	if ev == nil {
		return
	}
	// The bus delivers what is queued, then the collector flushes once more.
	ev.bus.Close()
	<-ev.busDone
	ev.cancel()
	<-ev.runDone
	if c := ev.col.Load(); c != nil {
		if err := c.Close(); err != nil {
			g.logger.Error("closing the inventory store", "error", err.Error())
		}
	}
	<-ev.connDone
	if p := ev.publisher.Load(); p != nil {
		_ = p.Close()
	}
	if ev.coolSub != nil {
		_ = ev.coolSub.Close()
	}
}

// eventsCollector exposes the event path's counters at scrape time.
type eventsCollector struct{ ev *events }

var (
	eventsPublishedDesc = prometheus.NewDesc("bulwark_events_published_total", "Exchange events queued on the event bus.", nil, nil)
	eventsDroppedDesc   = prometheus.NewDesc("bulwark_events_dropped_total",
		"Exchange events dropped because the bus was full (requests never wait for the inventory) or a NATS publish failed.", nil, nil)
	eventsIngestedDesc = prometheus.NewDesc("bulwark_inventory_events_total", "Exchange events ingested into the inventory.", nil, nil)
	findingsDesc       = prometheus.NewDesc("bulwark_detector_findings_total", "New or updated behavioural findings.", nil, nil)
	flushErrorsDesc    = prometheus.NewDesc("bulwark_inventory_store_errors_total", "Failed writes of the inventory or findings to the store (retried).", nil, nil)
	coolReceivedDesc   = prometheus.NewDesc("bulwark_cooldowns_received_total",
		"Cool-downs received from the cluster's collector (each full-table refresh counts again).", nil, nil)
	coolInvalidDesc = prometheus.NewDesc("bulwark_cooldowns_invalid_total",
		"Invalid cool-down messages and entries received on the cool-down subject, ignored.", nil, nil)
	coolActiveDesc = prometheus.NewDesc("bulwark_cooldowns_active", "Identities and addresses on a cool-down received from the collector now.", nil, nil)
	hookSentDesc   = prometheus.NewDesc("bulwark_findings_webhook_sent_total", "Findings delivered to detect.findings_webhook.", nil, nil)
	hookDropDesc   = prometheus.NewDesc("bulwark_findings_webhook_dropped_total",
		"Findings not delivered to detect.findings_webhook (queue full, or every attempt failed); they stay in the store.", nil, nil)
)

func (c eventsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{eventsPublishedDesc, eventsDroppedDesc, eventsIngestedDesc, findingsDesc, flushErrorsDesc,
		coolReceivedDesc, coolInvalidDesc, coolActiveDesc, hookSentDesc, hookDropDesc} {
		ch <- d
	}
}

func (c eventsCollector) Collect(ch chan<- prometheus.Metric) {
	ev := c.ev
	ev.mu.Lock()
	failed := ev.publishFailedEvts
	ev.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(eventsPublishedDesc, prometheus.CounterValue, float64(ev.bus.Published()))
	ch <- prometheus.MustNewConstMetric(eventsDroppedDesc, prometheus.CounterValue, float64(ev.bus.Dropped()+failed))
	if c := ev.col.Load(); c != nil {
		s := c.Stats()
		ch <- prometheus.MustNewConstMetric(eventsIngestedDesc, prometheus.CounterValue, float64(s.Ingested))
		ch <- prometheus.MustNewConstMetric(findingsDesc, prometheus.CounterValue, float64(s.Findings))
		ch <- prometheus.MustNewConstMetric(flushErrorsDesc, prometheus.CounterValue, float64(s.FlushErrors))
		ch <- prometheus.MustNewConstMetric(hookSentDesc, prometheus.CounterValue, float64(s.WebhookSent))
		ch <- prometheus.MustNewConstMetric(hookDropDesc, prometheus.CounterValue, float64(s.WebhookDropped))
	}
	if ev.coolSub != nil {
		s := ev.coolSub.Stats()
		ch <- prometheus.MustNewConstMetric(coolReceivedDesc, prometheus.CounterValue, float64(s.Received))
		ch <- prometheus.MustNewConstMetric(coolInvalidDesc, prometheus.CounterValue, float64(s.Invalid))
		ch <- prometheus.MustNewConstMetric(coolActiveDesc, prometheus.GaugeValue, float64(ev.coolDowns.Active()))
	}
}

// dashboard builds the admin listener's dashboard; nil when the inventory
// is disabled (there is nothing to show).
func (g *Gateway) dashboard() (http.Handler, error) {
	ev := g.events
	if ev == nil {
		return nil, nil
	}
	o := dashboard.Options{
		Token:    func() string { return g.snap.Load().cfg.Admin.Token },
		Config:   func() *config.Config { return g.snap.Load().cfg },
		Timeline: ev.timeline,
		Logger:   g.logger.With("component", "dashboard"),
	}
	if ev.local() {
		o.Inventory, o.Findings = ev.inventory, ev.findings
	}
	return dashboard.New(o)
}

// adminData feeds the admin API from the in-process collector.
func (g *Gateway) adminData() admin.Data {
	ev := g.events
	if ev == nil || !ev.local() {
		return admin.Data{}
	}
	return admin.Data{Inventory: ev.inventory, Findings: ev.findings}
}

// local reports whether this gateway keeps an inventory of its own (one
// node), opened or still to open.
func (ev *events) local() bool { return ev.col.Load() != nil || ev.pending != nil }

// inventory is the in-process collector's inventory; nil until its store
// opened.
func (ev *events) inventory() *inventory.Inventory {
	if c := ev.col.Load(); c != nil {
		return c.Inventory()
	}
	return nil
}

// errStoreNotOpen answers a findings query while the store has not opened.
var errStoreNotOpen = errors.New("the inventory store has not opened yet")

// findings lists stored findings through the in-process collector.
func (ev *events) findings(ctx context.Context, f store.FindingFilter) ([]finding.Finding, error) {
	c := ev.col.Load()
	if c == nil {
		return nil, errStoreNotOpen
	}
	return c.Store().Findings(ctx, f)
}

// gatewayCoolDown asks whether a caller is on cool-down: the in-process
// detectors on one node; in a cluster, the table of cool-downs the
// collector sent over NATS.
type gatewayCoolDown struct{ g *Gateway }

func (c gatewayCoolDown) CoolingDown(subject, client string) (time.Time, bool) {
	ev := c.g.events
	if ev == nil {
		return time.Time{}, false
	}
	if c := ev.col.Load(); c != nil {
		return c.Detector().CoolingDown(subject, client)
	}
	if ev.coolDowns != nil {
		return ev.coolDowns.CoolingDown(subject, client)
	}
	return time.Time{}, false
}
