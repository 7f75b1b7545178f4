package jwtauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	// maxRefreshInterval caps a Cache-Control max-age: a removed (perhaps
	// compromised) key must stop verifying within a day whatever the
	// endpoint says.
	maxRefreshInterval = 24 * time.Hour
	// warnEvery rate-limits the stale-if-error warning, so that an identity
	// provider outage is one log line per 30s, not one per request.
	warnEvery = 30 * time.Second
	// maxSkipLogged bounds the remembered "skipped key" log lines.
	maxSkipLogged = 1024
)

// fetchState is guarded by Provider.fmu.
type fetchState struct {
	inflight    *flight       // the fetch in progress, shared by all waiters
	lastAttempt time.Time     // start of the last fetch (clock), for the rate limit
	interval    time.Duration // until the next scheduled refresh
	etag        string        // of the last 200 response
	fileSum     [sha256.Size]byte
	fetched     time.Time // last load or "unchanged" confirmation
	stale       bool      // the last fetch failed
	lastErr     error
	lastWarn    time.Time
	closed      bool
	skipLogged  map[string]bool
}

type flight struct{ done chan struct{} }

// refreshKeys fetches the key set, at most once per MinRefreshInterval
// across all goroutines unless force; concurrent callers wait for the one
// fetch in flight (or until ctx ends). The fetch itself runs on the
// provider's context with FetchTimeout, so a cancelled request does not
// abort a fetch others wait for.
func (p *Provider) refreshKeys(ctx context.Context, force bool) {
	p.fmu.Lock()
	f := p.fetch.inflight
	if f == nil {
		now := p.now()
		if p.fetch.closed || (!force && !p.fetch.lastAttempt.IsZero() && now.Sub(p.fetch.lastAttempt) < p.minRefresh) {
			p.fmu.Unlock()
			return
		}
		f = &flight{done: make(chan struct{})}
		p.fetch.inflight = f
		p.fetch.lastAttempt = now
		p.wg.Add(1)
		go p.runFetch(f)
	}
	p.fmu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
	}
}

func (p *Provider) runFetch(f *flight) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.base, p.timeout)
	defer cancel()
	var (
		res fetchResult
		err error
	)
	if p.cfg.JWKSFile != "" {
		res, err = p.readFile()
	} else {
		res, err = p.fetchURL(ctx)
	}
	if p.base.Err() == nil { // closing: nothing to install or report
		p.apply(res, err)
	}
	p.fmu.Lock()
	p.fetch.inflight = nil
	p.fmu.Unlock()
	close(f.done)
}

type fetchResult struct {
	set       *keySet
	skipped   []skippedKey
	unchanged bool
	etag      string
	fileSum   [sha256.Size]byte
	interval  time.Duration
}

// apply installs a fetch outcome: a new set replaces the old atomically (and
// bumps the cache epoch when a key disappeared); an error keeps the last
// good set.
func (p *Provider) apply(res fetchResult, err error) {
	now := p.now()
	p.fmu.Lock()
	if err != nil {
		p.fetch.stale = true
		p.fetch.lastErr = err
		p.fetch.interval = p.minRefresh // retry sooner while failing
		warn := p.fetch.lastWarn.IsZero() || now.Sub(p.fetch.lastWarn) >= warnEvery
		if warn {
			p.fetch.lastWarn = now
		}
		p.fmu.Unlock()
		if p.obs != nil {
			p.obs.KeySetFetch(p.name, "error")
			if p.cfg.JWKSURL != "" {
				p.obs.DependencyError(p.name)
			}
		}
		if warn {
			if old := p.keys.Load(); old != nil {
				p.log.Warn("jwks refresh failed; serving the last good key set (stale-if-error)",
					"error", err, "keys", len(old.keys))
			} else {
				p.log.Error("jwks unavailable and none ever loaded: tokens fail closed", "error", err)
			}
		}
		return
	}
	p.fetch.stale = false
	p.fetch.lastErr = nil
	p.fetch.fetched = now
	p.fetch.interval = res.interval
	if res.unchanged {
		p.fmu.Unlock()
		if p.obs != nil {
			p.obs.KeySetFetch(p.name, "unchanged")
		}
		return
	}
	p.fetch.etag = res.etag
	p.fetch.fileSum = res.fileSum
	var newSkips []skippedKey
	if p.fetch.skipLogged == nil || len(p.fetch.skipLogged) > maxSkipLogged {
		p.fetch.skipLogged = map[string]bool{}
	}
	for _, s := range res.skipped {
		sig := fmt.Sprintf("%d/%s/%s", s.index, s.kid, s.reason)
		if !p.fetch.skipLogged[sig] {
			p.fetch.skipLogged[sig] = true
			newSkips = append(newSkips, s)
		}
	}
	old := p.keys.Swap(res.set)
	var removed []string
	if old != nil {
		removed = res.set.removedFrom(old)
	}
	if len(removed) > 0 {
		// After the Swap: a Verify that read the old epoch may still be
		// verifying with the removed key; its cache entry is dropped.
		p.epoch.Add(1)
	}
	p.fmu.Unlock()
	if p.obs != nil {
		p.obs.KeySetFetch(p.name, "ok")
	}
	for _, s := range newSkips {
		p.log.Warn("jwks key skipped", "index", s.index, "kid", s.kid, "reason", s.reason)
	}
	p.log.Info("jwks loaded", "keys", len(res.set.keys), "kids", res.set.kids(),
		"removed", removed, "next_refresh", res.interval)
}

// loop refreshes in the background until Close.
func (p *Provider) loop() {
	defer p.wg.Done()
	t := time.NewTimer(p.nextDelay())
	defer t.Stop()
	for {
		select {
		case <-p.base.Done():
			return
		case <-t.C:
		}
		p.refreshKeys(p.base, false)
		t.Reset(p.nextDelay())
	}
}

// nextDelay is the time until the next scheduled refresh: the current
// interval after the last attempt (an early refresh postpones it).
func (p *Provider) nextDelay() time.Duration {
	p.fmu.Lock()
	defer p.fmu.Unlock()
	d := p.fetch.lastAttempt.Add(p.fetch.interval).Sub(p.now())
	if d <= 0 || d > p.fetch.interval {
		d = p.fetch.interval
	}
	return d
}

// fetchURL GETs the JWKS with If-None-Match.
func (p *Provider) fetchURL(ctx context.Context) (fetchResult, error) {
	var res fetchResult
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.JWKSURL, nil)
	if err != nil {
		return res, fmt.Errorf("jwks request %s: %w", p.cfg.JWKSURL, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	p.fmu.Lock()
	etag := p.fetch.etag
	p.fmu.Unlock()
	if etag != "" && p.keys.Load() != nil {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return res, fmt.Errorf("fetch jwks %s: %w", p.cfg.JWKSURL, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		_ = resp.Body.Close()
	}()
	res.interval = p.intervalFrom(resp.Header.Values("Cache-Control"))
	switch {
	case resp.StatusCode == http.StatusNotModified && req.Header.Get("If-None-Match") != "":
		res.unchanged = true
		return res, nil
	case resp.StatusCode != http.StatusOK:
		return res, fmt.Errorf("fetch jwks %s: status %d", p.cfg.JWKSURL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return res, fmt.Errorf("read jwks %s: %w", p.cfg.JWKSURL, err)
	}
	if res.set, res.skipped, err = parseJWKS(body); err != nil {
		return res, fmt.Errorf("jwks %s: %w", p.cfg.JWKSURL, err)
	}
	res.etag = resp.Header.Get("ETag")
	return res, nil
}

// readFile rereads jwks_file; an unchanged content is "unchanged".
func (p *Provider) readFile() (fetchResult, error) {
	res := fetchResult{interval: p.refresh}
	f, err := os.Open(p.cfg.JWKSFile)
	if err != nil {
		return res, fmt.Errorf("read jwks_file: %w", err)
	}
	defer func() { _ = f.Close() }()
	body, err := io.ReadAll(io.LimitReader(f, maxJWKSBytes+1))
	if err != nil {
		return res, fmt.Errorf("read jwks_file %s: %w", p.cfg.JWKSFile, err)
	}
	res.fileSum = sha256.Sum256(body)
	p.fmu.Lock()
	same := p.fetch.fileSum == res.fileSum && p.keys.Load() != nil
	p.fmu.Unlock()
	if same {
		res.unchanged = true
		return res, nil
	}
	if res.set, res.skipped, err = parseJWKS(body); err != nil {
		return res, fmt.Errorf("jwks_file %s: %w", p.cfg.JWKSFile, err)
	}
	return res, nil
}

// loadFile is the synchronous first load of jwks_file.
func (p *Provider) loadFile() error {
	res, err := p.readFile()
	if err != nil {
		return err
	}
	p.fmu.Lock()
	p.fetch.lastAttempt = p.now()
	p.fmu.Unlock()
	p.apply(res, nil)
	return nil
}

// intervalFrom turns Cache-Control into the refresh interval:
// max(MinRefreshInterval, max-age) capped at a day; no-store or no-cache
// mean MinRefreshInterval; no max-age means RefreshInterval.
func (p *Provider) intervalFrom(cacheControl []string) time.Duration {
	maxAge := -1
	for _, h := range cacheControl {
		for d := range strings.SplitSeq(h, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return p.minRefresh
			case "max-age":
				n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
				if err == nil && n >= 0 {
					maxAge = n
				}
			}
		}
	}
	if maxAge < 0 {
		return p.refresh
	}
	d := time.Duration(min(maxAge, int(maxRefreshInterval/time.Second))) * time.Second
	return min(max(d, p.minRefresh), max(maxRefreshInterval, p.minRefresh))
}
