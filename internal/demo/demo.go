// Package demo runs `bulwark demo`: the sample bank API, the gateway in
// front of it with every protection on, a local identity provider, and
// traffic (legitimate customers and attackers) through the gateway, all
// on loopback, with zero setup. It writes a real config file (which
// `bulwark check` accepts), a self-signed certificate and the identity
// provider's JWKS into a working directory, so what the demo runs is
// exactly what a user would. At the end it prints, per attack kind, how
// much the gateway stopped, and whether any legitimate request was refused.
package demo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/demo/bank"
	"github.com/bulwarkapi/bulwark/internal/demo/idp"
	"github.com/bulwarkapi/bulwark/internal/demo/traffic"
	"github.com/bulwarkapi/bulwark/internal/gateway"
)

// Options configure the demo.
type Options struct {
	Out      io.Writer
	Logger   *slog.Logger
	Version  string
	Duration time.Duration
	// Dir receives the generated files; "" makes a temporary directory
	// that is removed at exit.
	Dir string
	// Ready, when not nil, receives the demo's addresses once it serves.
	Ready func(Addrs)
	// ReadyFile, when not empty, receives the demo's addresses as JSON
	// once it serves (for browser tests and scripts).
	ReadyFile string
	// Report, when not empty, receives the traffic summary as JSON at
	// exit (with traffic only).
	Report string
	// Customers is the number of simulated legitimate customers
	// (default traffic.DefaultCustomers).
	Customers int
	// NoTraffic runs the bank and the gateway without simulated traffic.
	NoTraffic bool
}

// Addrs are where the running demo can be reached.
type Addrs struct {
	Gateway    string `json:"gateway"` // https://127.0.0.1:PORT
	Admin      string `json:"admin"`   // http://127.0.0.1:PORT
	Bank       string `json:"bank"`    // http://127.0.0.1:PORT (unprotected, for comparison)
	AdminToken string `json:"admin_token"`
	Dir        string `json:"dir"`
}

const (
	// bankSeed fixes the sample data, so ids in docs and tests stay valid.
	bankSeed = 1
	// progressInterval is how often a running demo prints its counts.
	progressInterval = 10 * time.Second
	// visitorTokenLifetime: the visitor's curl token outlives a long demo.
	visitorTokenLifetime = 8 * time.Hour
)

// Run starts the demo and blocks until ctx is done.
func Run(ctx context.Context, o Options) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Customers <= 0 {
		o.Customers = traffic.DefaultCustomers
	}
	if o.Customers > traffic.MaxCustomers {
		return fmt.Errorf("demo: at most %d customers, not %d", traffic.MaxCustomers, o.Customers)
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "bulwark-demo-")
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	// The bank: the deliberately unprotected API behind the gateway. Its
	// customers are the simulated ones, then the attackers' own accounts,
	// then one for the visitor to try things with.
	visitor := o.Customers + traffic.AttackerAccounts + 1
	bk := bank.New(bank.Options{Seed: bankSeed, Customers: visitor})
	bankLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: listen bank: %w", err)
	}
	bankSrv := &http.Server{Handler: bk.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = bankSrv.Serve(bankLn) }()
	defer bankSrv.Close()

	id, err := idp.New(idp.Options{})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	token, err := randomHex(24)
	if err != nil {
		return err
	}
	secret, err := randomHex(32) // this run's pseudonym secret
	if err != nil {
		return err
	}
	certPEM, err := writeFiles(dir, bankLn.Addr().String(), id)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	cfgPath := filepath.Join(dir, configFile)
	cfg, err := config.Parse(mustRead(cfgPath), cfgPath, func(k string) (string, bool) {
		switch k {
		case "BULWARK_ADMIN_TOKEN":
			return token, true
		case "BULWARK_PSEUDONYM_SECRET":
			return secret, true
		}
		return os.LookupEnv(k)
	})
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	g, err := gateway.New(ctx, cfg, gateway.Options{Logger: o.Logger, Version: o.Version})
	if err != nil {
		return fmt.Errorf("demo gateway: %w", err)
	}
	if err := g.Start(ctx); err != nil {
		return fmt.Errorf("demo gateway: %w", err)
	}
	addrs := Addrs{
		Gateway:    "https://" + g.Addrs()[0].String(),
		Admin:      "http://" + g.AdminAddr().String(),
		Bank:       "http://" + bankLn.Addr().String(),
		AdminToken: token,
		Dir:        dir,
	}
	you, err := writeVisitorToken(dir, bk, id, visitor)
	if err != nil {
		return err
	}
	check := selfCheck(ctx, addrs.Gateway, roots)
	printBanner(o.Out, addrs, check, you, o)
	if o.ReadyFile != "" {
		if err := writeJSON(o.ReadyFile, addrs, 0o600); err != nil { // it holds the admin token
			return err
		}
	}
	if o.Ready != nil {
		o.Ready(addrs)
	}

	var summary traffic.Summary
	if !o.NoTraffic {
		gen, err := traffic.New(traffic.Config{Gateway: addrs.Gateway, RootCAs: roots, Bank: bk, IdP: id,
			Customers: o.Customers, Seed: bankSeed, Logger: o.Logger})
		if err != nil {
			return fmt.Errorf("demo traffic: %w", err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { summary = gen.Run(ctx) })
		progress(ctx, o.Out, gen)
		wg.Wait()
	} else {
		<-ctx.Done()
	}
	if !o.NoTraffic {
		fmt.Fprintln(o.Out, "\nWhat the gateway did with the demo's traffic:")
		fmt.Fprintln(o.Out)
		if err := summary.WriteTable(o.Out); err != nil {
			return err
		}
	}
	if o.Report != "" && !o.NoTraffic {
		if err := summary.WriteJSON(o.Report); err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "Report: %s\n", o.Report)
	}
	fmt.Fprintln(o.Out, "\nStopping: draining the gateway and closing the audit log.")
	if err := g.Shutdown(context.Background()); err != nil {
		return err
	}
	audit := filepath.Join(dir, auditFile)
	fmt.Fprintf(o.Out, "Audit log: %s (check it with: bulwark audit verify %s)\n", audit, audit)
	return nil
}

// progress prints running counts every progressInterval until ctx is done.
func progress(ctx context.Context, w io.Writer, gen *traffic.Generator) {
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s := gen.Summary()
			attempts, blocked := 0, 0
			for _, a := range s.Attacks {
				attempts += a.Attempts
				blocked += a.Blocked
			}
			pct := 0.0
			if attempts > 0 {
				pct = 100 * float64(blocked) / float64(attempts)
			}
			fmt.Fprintf(w, "[%3.0fs] customers: %d requests, %d refused | attacks: %d attempts, %d blocked (%.1f%%)\n",
				s.DurationSeconds, s.Benign.Requests, s.Benign.Blocked+s.Benign.Errors, attempts, blocked, pct)
		}
	}
}

// visitor describes the visitor's own demo customer for the banner.
type visitor struct {
	username, password, customerID, accountID, otherAccountID, tokenFile string
}

// writeVisitorToken issues a long-lived token for customer n and writes it
// to the demo directory.
func writeVisitorToken(dir string, bk *bank.Bank, id *idp.IdP, n int) (visitor, error) {
	c := bk.Customers()[n-1]
	var accts, cards []string
	for _, a := range bk.Accounts(c.CustomerID) {
		accts = append(accts, a.AccountID)
	}
	for _, cd := range bk.Cards(c.CustomerID) {
		cards = append(cards, cd.CardID)
	}
	claims := id.Claims(c.CustomerID, accts, cards, []string{"customer"})
	claims["exp"] = time.Now().Add(visitorTokenLifetime).Unix()
	v := visitor{customerID: c.CustomerID, accountID: accts[0], tokenFile: filepath.Join(dir, visitorTokenFile),
		otherAccountID: bk.Accounts(bk.Customers()[0].CustomerID)[0].AccountID}
	v.username, v.password = bank.Credentials(n)
	if err := os.WriteFile(v.tokenFile, []byte(id.Sign(claims)+"\n"), 0o600); err != nil {
		return v, fmt.Errorf("demo: %w", err)
	}
	return v, nil
}

func writeJSON(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), mode); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

func mustRead(path string) []byte {
	b, _ := os.ReadFile(path) // just written; a failure surfaces as a config error
	return b
}

// selfCheck sends one request through the gateway so the banner can say
// the path works end to end.
func selfCheck(ctx context.Context, gw string, roots *x509.CertPool) string {
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gw+bank.BasePath+"/health", nil)
	if err != nil {
		return "self-check failed: " + err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return "self-check failed: " + err.Error()
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return fmt.Sprintf("self-check: GET %s/health -> %d over %s, request id %s", bank.BasePath, resp.StatusCode, resp.Proto, resp.Header.Get("X-Request-Id"))
}

func printBanner(w io.Writer, a Addrs, check string, v visitor, o Options) {
	fmt.Fprintf(w, `Bulwark demo is running (all on loopback).

  Gateway (HTTPS, self-signed):  %[1]s%[5]s
  Bank API behind it (no TLS):   %[3]s%[5]s
  Admin (metrics, findings):     %[2]s
  Admin token:                   %[4]s
  Config, certificate, audit:    %[6]s

  %[7]s

Your own demo customer: %[8]s / %[9]s (%[10]s); an access token for it is in %[11]s.
Try:
  TOKEN=$(cat %[11]s); CA=%[6]s/tls.crt
  curl -s --cacert $CA -H "Authorization: Bearer $TOKEN" "%[1]s%[5]s/accounts?customerId=%[10]s"; echo
  curl -s --cacert $CA -H "Authorization: Bearer $TOKEN" "%[1]s%[5]s/cards?customerId=%[10]s"; echo   # card numbers leave masked
  curl -s "%[3]s%[5]s/cards" | head -c 300; echo   # ... the bank itself sends them whole, to anyone
  curl -s --cacert $CA -i -H "Authorization: Bearer $TOKEN" %[1]s%[5]s/accounts/%[12]s   # someone else's: 403 object_denied
  curl -s --cacert $CA -i -H "Authorization: Bearer $TOKEN" %[1]s%[5]s/admin/customers   # 403 admin_operation
  curl -s --cacert $CA -i -H "Authorization: Bearer $TOKEN" -H "Referer: x' UNION SELECT pan FROM cards--" "%[1]s%[5]s/accounts?customerId=%[10]s"   # 403 waf_blocked
  curl -s --cacert $CA -i %[1]s%[5]s/accounts/%[13]s   # no token: 401
  curl -s -H 'Authorization: Bearer %[4]s' %[2]s/metrics | grep bulwark_decisions_total
  curl -s -H 'Authorization: Bearer %[4]s' %[2]s/api/v1/findings
  bulwark check -c %[6]s/bulwark.yaml
`, a.Gateway, a.Admin, a.Bank, a.AdminToken, bank.BasePath, a.Dir, check,
		v.username, v.password, v.customerID, v.tokenFile, v.otherAccountID, v.accountID)
	if o.NoTraffic {
		fmt.Fprintln(w, "\nNo simulated traffic (--no-traffic). Press Ctrl-C to stop.")
		return
	}
	fmt.Fprintf(w, `
Simulated traffic through the gateway: %d customers (customer1 ... customer%d, from 198.51.100.x)
banking as usual, and one attacker per attack kind (from 203.0.113.x). Press Ctrl-C to stop and see the summary.

`, o.Customers, o.Customers)
}
