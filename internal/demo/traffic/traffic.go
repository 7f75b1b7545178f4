// Package traffic is the demo's traffic generator: legitimate customers
// of the sample bank going about their banking, and attackers, each kind
// of attack a separate actor, all sent through the gateway at once. Every
// request is labelled (benign, or which attack) and its response
// classified (see Classify), so that the demo can say, per attack kind,
// how much the gateway stopped, and whether any customer was refused.
//
// Each actor presents its own stable client address in X-Forwarded-For
// (customers 198.51.100.x, attackers 203.0.113.x, both documentation
// ranges): the demo gateway trusts the loopback address as a proxy, so
// rate limits, brute-force counters and cool-downs tell the actors apart
// as they would tell real clients apart behind a load balancer. All
// traffic stays on loopback.
package traffic

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/bulwarkapi/bulwark/internal/demo/bank"
	"github.com/bulwarkapi/bulwark/internal/demo/idp"
)

// AttackerAccounts is how many bank customers, numbered after the benign
// ones, are the attackers' own accounts: attackers who need a valid token
// (enumeration, harvesting, injection, flood, mass assignment, admin
// access) sign up like anyone else, each with an account of their own, so
// that a cool-down earned by one does not stop another.
const AttackerAccounts = 6

const (
	// DefaultCustomers is the number of benign customers when
	// Config.Customers is zero.
	DefaultCustomers = 10
	// MaxCustomers bounds the benign customers: each has an address of
	// its own in 198.51.100.0/24 (from .10 up).
	MaxCustomers = 200
)

const (
	// requestTimeout bounds one request; the gateway answers in
	// milliseconds, but a login may be held by the brute-force delay (2s
	// at most).
	requestTimeout = 10 * time.Second
	// maxBodyRead is how much of a response body is read for
	// classification; the bank's largest responses are a few KiB.
	maxBodyRead = 1 << 20
)

// Config configures a Generator.
type Config struct {
	// Gateway is the gateway's base URL, "https://127.0.0.1:PORT".
	Gateway string
	// RootCAs verifies the gateway's certificate; nil uses the system roots.
	RootCAs *x509.CertPool
	// Bank is the bank behind the gateway: the generator reads its
	// customers, accounts and cards (never through the back door: every
	// request goes through the gateway).
	Bank *bank.Bank
	// IdP issues the customers' and the attackers' own tokens.
	IdP *idp.IdP
	// Customers is the number of benign customers (bank customers 1..N);
	// the attackers' accounts are customers N+1..N+AttackerAccounts, so
	// the bank needs at least N+AttackerAccounts customers.
	Customers int
	// Seed makes the choices of the actors reproducible (timing is not).
	Seed uint64
	// Logger receives a line per unexpected failure; nil discards.
	Logger *slog.Logger
}

// Generator runs the actors and records their outcomes.
type Generator struct {
	cfg  Config
	rec  *Recorder
	log  *slog.Logger
	base string // Gateway + bank.BasePath

	customers []profile // benign, in order
	attackers []profile // the attackers' own accounts
}

// profile is one bank customer as the generator knows them.
type profile struct {
	n          int // 1-based customer number
	customerID string
	username   string
	password   string
	accounts   []bank.Account
	cards      []bank.Card
}

// New prepares a generator; it sends nothing until Run.
func New(cfg Config) (*Generator, error) {
	if cfg.Bank == nil || cfg.IdP == nil || cfg.Gateway == "" {
		return nil, errors.New("traffic: Gateway, Bank and IdP are required")
	}
	if cfg.Customers <= 0 {
		cfg.Customers = DefaultCustomers
	}
	if cfg.Customers > MaxCustomers {
		return nil, fmt.Errorf("traffic: at most %d customers, not %d", MaxCustomers, cfg.Customers)
	}
	all := cfg.Bank.Customers()
	if len(all) < cfg.Customers+AttackerAccounts {
		return nil, fmt.Errorf("traffic: the bank has %d customers; %d benign customers and %d attackers need %d",
			len(all), cfg.Customers, AttackerAccounts, cfg.Customers+AttackerAccounts)
	}
	g := &Generator{cfg: cfg, rec: NewRecorder(), log: cfg.Logger, base: cfg.Gateway + bank.BasePath}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	for i := range cfg.Customers + AttackerAccounts {
		c := all[i]
		user, pass := bank.Credentials(i + 1)
		p := profile{n: i + 1, customerID: c.CustomerID, username: user, password: pass,
			accounts: cfg.Bank.Accounts(c.CustomerID), cards: cfg.Bank.Cards(c.CustomerID)}
		if i < cfg.Customers {
			g.customers = append(g.customers, p)
		} else {
			g.attackers = append(g.attackers, p)
		}
	}
	return g, nil
}

// Summary is a snapshot of the outcomes so far.
func (g *Generator) Summary() Summary { return g.rec.Summary() }

// Run sends traffic until ctx is done, then waits for the requests in
// flight to end (they are cancelled with ctx and not counted) and returns
// the summary.
func (g *Generator) Run(ctx context.Context) Summary {
	var wg sync.WaitGroup
	var actors []*actor
	rng := rand.New(rand.NewPCG(g.cfg.Seed, 0x5eed))
	for i, c := range g.customers {
		a := g.newActor(Benign, fmt.Sprintf("198.51.100.%d", 10+i), customerAgents[i%len(customerAgents)], rng.Uint64())
		actors = append(actors, a)
		wg.Go(func() { a.customer(ctx, c) })
	}
	for i, att := range g.attacks() {
		a := g.newActor(att.kind, fmt.Sprintf("203.0.113.%d", 10+i), att.agent, rng.Uint64())
		actors = append(actors, a)
		wg.Go(func() { att.run(ctx, a) })
	}
	wg.Wait()
	// Hang up, so that the gateway's drain does not wait on our
	// keep-alive connections.
	for _, a := range actors {
		a.client.CloseIdleConnections()
	}
	return g.rec.Summary()
}

// actor is one simulated client: its address, its user agent, its own
// connections and its own random choices.
type actor struct {
	g      *Generator
	kind   Kind
	addr   string
	agent  string
	client *http.Client
	rng    *rand.Rand
	mu     sync.Mutex // guards rng: an attacker's requests run concurrently
}

func (g *Generator) newActor(k Kind, addr, agent string, seed uint64) *actor {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: g.cfg.RootCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	return &actor{
		g: g, kind: k, addr: addr, agent: agent, rng: rand.New(rand.NewPCG(seed, uint64(len(k)))),
		client: &http.Client{
			Transport: tr,
			Timeout:   requestTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// intn is a concurrency-safe rng.IntN.
func (a *actor) intn(n int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rng.IntN(n)
}

// between returns a random duration in [lo, hi).
func (a *actor) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(a.intn(int(hi-lo)))
}

// call is one request an actor makes.
type call struct {
	method string
	path   string // under bank.BasePath, with the query; already escaped
	token  string // bearer token; "" sends none
	body   string // JSON; "" sends none
	header map[string]string
}

// send makes the request as the actor (its address, its user agent) and
// returns the response, or an error when there was none.
func (a *actor) send(ctx context.Context, c call) (Response, error) {
	var body io.Reader
	if c.body != "" {
		body = bytes.NewBufferString(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, a.g.base+c.path, body)
	if err != nil {
		return Response{}, err
	}
	req.Header.Set("X-Forwarded-For", a.addr)
	req.Header.Set("User-Agent", a.agent)
	req.Header.Set("Accept", "application/json")
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyRead))
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}, nil
}

// do sends c, classifies the response as the actor's kind and records it.
// A request cut short because the run ended is not counted. ok reports
// whether a response was recorded.
func (a *actor) do(ctx context.Context, c call) (r Response, o Outcome, ok bool) {
	r, err := a.send(ctx, c)
	if err != nil {
		if ctx.Err() == nil {
			a.g.rec.Error(a.kind)
			a.g.log.Warn("demo traffic: request failed", "kind", a.kind, "method", c.method, "path", c.path, "err", err)
		}
		return r, Outcome{}, false
	}
	o = Classify(a.kind, r)
	a.g.rec.Record(a.kind, o)
	if a.kind == Benign && o.Blocked {
		a.g.log.Warn("demo traffic: a legitimate request was refused", "method", c.method, "path", c.path,
			"status", r.Status, "reason", o.Reason, "client", a.addr, "body", string(r.Body[:min(len(r.Body), 300)]))
	}
	return r, o, true
}

// sleep waits for d or until ctx is done; it reports whether to go on.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// pace calls fn every interval, each call in its own goroutine, with at
// most maxInFlight running: a tick that finds them all busy is skipped,
// as a scripted attacker's thread pool would. It returns when ctx is done
// and every call has returned.
func pace(ctx context.Context, interval time.Duration, maxInFlight int, fn func(context.Context)) {
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case sem <- struct{}{}:
			wg.Go(func() {
				defer func() { <-sem }()
				fn(ctx)
			})
		default: // all busy: skip this tick
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tokenFor issues a token for a customer profile through the IdP, as the
// bank's identity provider does after a successful sign-in.
func (g *Generator) tokenFor(p profile, roles ...string) string {
	var accts, cards []string
	for _, a := range p.accounts {
		accts = append(accts, a.AccountID)
	}
	for _, c := range p.cards {
		cards = append(cards, c.CardID)
	}
	if len(roles) == 0 {
		roles = []string{"customer"}
	}
	return g.cfg.IdP.Issue(p.customerID, accts, cards, roles)
}

// customerAgents are the user agents of the bank's own apps.
var customerAgents = []string{
	"DemoBank-iOS/5.12.1 (iPhone15,2; iOS 18.5) CFNetwork/1568 Darwin/24.5.0",
	"DemoBank-Android/5.12.0 (Pixel 8; Android 15) okhttp/4.12.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
}
