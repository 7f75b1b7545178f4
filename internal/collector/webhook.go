package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/bulwarkapi/bulwark/internal/detect"
	"github.com/bulwarkapi/bulwark/internal/finding"
	"github.com/bulwarkapi/bulwark/internal/ratelog"
)

// Bounds of the webhook sink.
const (
	// webhookQueue bounds the findings waiting to be sent; past it new
	// ones are dropped (counted): a SIEM that is down must not grow the
	// collector's memory.
	webhookQueue = 4096
	// webhookBatch is how many findings one POST carries at most.
	webhookBatch = 100
	// webhookAttempts is how often a batch is tried before it is dropped.
	webhookAttempts = 3
	// webhookLogEvery rate-limits the log line of failed deliveries.
	webhookLogEvery = 30 * time.Second
)

// WebhookOptions configures a webhook sink.
type WebhookOptions struct {
	// URL receives each batch as a POST of a JSON array of OCSF 1.3
	// Detection Findings (class 2004).
	URL string
	// Authorization is sent as the Authorization header when not empty
	// ("Bearer TOKEN", "Splunk TOKEN").
	Authorization string
	// Timeout bounds one POST.
	Timeout time.Duration
	// Client is the HTTP client; nil means a client with Timeout.
	Client *http.Client
	// Logger receives the rate-limited delivery failures.
	Logger *slog.Logger
	// Backoff is the wait before the second attempt, doubled for the
	// third (default 1s; tests shorten it).
	Backoff time.Duration
}

// webhook sends findings to a SIEM's HTTP collector in the background:
// a bounded queue, batches, a few attempts with back-off, then the batch
// is dropped and counted. Write never blocks.
type webhook struct {
	o      WebhookOptions
	q      chan finding.Finding
	done   chan struct{}
	cancel context.CancelFunc

	sent, dropped atomic.Uint64
	logLine       ratelog.Every
}

func newWebhook(o WebhookOptions) *webhook {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &webhook{o: o, q: make(chan finding.Finding, webhookQueue), done: make(chan struct{}), cancel: cancel,
		logLine: ratelog.Every{Interval: webhookLogEvery}}
	go w.run(ctx)
	return w
}

// Write queues fs; what does not fit is dropped and counted.
func (w *webhook) Write(fs []finding.Finding) {
	for _, f := range fs {
		select {
		case w.q <- f:
		default:
			w.dropped.Add(1)
			w.failed(1, fmt.Errorf("queue of %d findings full", webhookQueue))
		}
	}
}

// Close sends what is queued (each batch gets one attempt, bounded by
// the timeout) and stops.
func (w *webhook) Close() error {
	close(w.q)
	select {
	case <-w.done:
	case <-time.After(2*w.o.Timeout + time.Second):
		w.cancel()
		<-w.done
	}
	return nil
}

func (w *webhook) run(ctx context.Context) {
	defer close(w.done)
	batch := make([]finding.Finding, 0, webhookBatch)
	for f := range w.q {
		batch = append(batch[:0], f)
	fill:
		for len(batch) < webhookBatch {
			select {
			case g, ok := <-w.q:
				if !ok {
					break fill
				}
				batch = append(batch, g)
			default:
				break fill
			}
		}
		w.deliver(ctx, batch)
	}
}

// deliver POSTs one batch, with up to webhookAttempts attempts.
func (w *webhook) deliver(ctx context.Context, batch []finding.Finding) {
	docs := make([]map[string]any, len(batch))
	for i, f := range batch {
		docs[i] = detect.OCSF(f)
	}
	body, err := json.Marshal(docs)
	if err != nil {
		w.dropped.Add(uint64(len(batch)))
		w.failed(len(batch), err)
		return
	}
	wait := w.o.Backoff
	for attempt := 1; ; attempt++ {
		err = w.post(ctx, body)
		if err == nil {
			w.sent.Add(uint64(len(batch)))
			return
		}
		if attempt == webhookAttempts || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait *= 2
	}
	w.dropped.Add(uint64(len(batch)))
	w.failed(len(batch), err)
}

func (w *webhook) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.o.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bulwark-findings")
	if w.o.Authorization != "" {
		req.Header.Set("Authorization", w.o.Authorization)
	}
	resp, err := w.o.Client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			return fmt.Errorf("%s: %w", ue.Op, ue.Err) // the URL may hold a credential: not logged
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the webhook answered %s", resp.Status)
	}
	return nil
}

// failed logs dropped findings at most once per webhookLogEvery.
func (w *webhook) failed(n int, err error) {
	if total, ok := w.logLine.Tick(time.Now(), uint64(n)); ok {
		w.o.Logger.Error("sending findings to the webhook failed; they are dropped (kept in the store)",
			"findings", total, "error", err.Error())
	}
}
