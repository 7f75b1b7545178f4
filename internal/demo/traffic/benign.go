package traffic

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/bulwarkapi/bulwark/internal/demo/bank"
)

// A customer's rhythm. A person reads a screen for a second or more
// between taps, so one customer sends about one request every two
// seconds (well under the demo's limit of 60 a minute per customer and
// address), signs in once a session (a session lasts half a minute or
// more: well under the 6 sign-ins a minute allowed per address), and
// pauses between sessions.
const (
	minThink        = 1200 * time.Millisecond
	maxThink        = 2800 * time.Millisecond
	minSessionSteps = 8
	maxSessionSteps = 16
	minSessionPause = 2 * time.Second
	maxSessionPause = 5 * time.Second
	// startSpread staggers the customers' first sign-ins.
	startSpread = 2 * time.Second
	// maxPaymentMinor caps a customer's payments (in pence/cents): small
	// everyday amounts, far below the demo's step-up threshold.
	maxPaymentMinor = 25000
)

// step is one thing a signed-in customer does; weight is how often.
type step struct {
	weight int
	do     func(a *actor, ctx context.Context, s *session)
}

// session is a signed-in customer.
type session struct {
	p     profile
	token string
}

// customer runs one benign customer until ctx is done: sign in through
// the gateway, get an access token from the identity provider, use the
// bank for a while, sign out (drop the token), pause, again.
func (a *actor) customer(ctx context.Context, p profile) {
	if !sleep(ctx, a.between(0, startSpread)) {
		return
	}
	total := 0
	for _, s := range customerSteps {
		total += s.weight
	}
	for ctx.Err() == nil {
		body, _ := json.Marshal(map[string]string{"username": p.username, "password": p.password})
		r, o, ok := a.do(ctx, call{method: "POST", path: "/login", body: string(body)})
		if ok && !o.Blocked && r.Status == 200 {
			s := &session{p: p, token: a.g.tokenFor(p)}
			for range minSessionSteps + a.intn(maxSessionSteps-minSessionSteps+1) {
				if !sleep(ctx, a.between(minThink, maxThink)) {
					return
				}
				n := a.intn(total)
				for _, st := range customerSteps {
					if n -= st.weight; n < 0 {
						st.do(a, ctx, s)
						break
					}
				}
			}
		}
		if !sleep(ctx, a.between(minSessionPause, maxSessionPause)) {
			return
		}
	}
}

// customerSteps is what customers do, and how often.
var customerSteps = []step{
	{6, func(a *actor, ctx context.Context, s *session) { // the accounts overview
		a.do(ctx, call{method: "GET", path: "/accounts?customerId=" + s.p.customerID, token: s.token})
	}},
	{3, func(a *actor, ctx context.Context, s *session) {
		a.do(ctx, call{method: "GET", path: "/accounts/" + a.ownAccount(s).AccountID, token: s.token})
	}},
	{5, func(a *actor, ctx context.Context, s *session) {
		q := "?limit=20"
		if a.intn(2) == 0 { // this month only
			q = "?fromBookingDateTime=" + url.QueryEscape(bank.AsOf.AddDate(0, 0, -30).Format(time.RFC3339)) + "&limit=50"
		}
		a.do(ctx, call{method: "GET", path: "/accounts/" + a.ownAccount(s).AccountID + "/transactions" + q, token: s.token})
	}},
	{1, func(a *actor, ctx context.Context, s *session) { // old app versions still use the statement
		a.do(ctx, call{method: "GET", path: "/accounts/" + a.ownAccount(s).AccountID + "/statement", token: s.token})
	}},
	{3, func(a *actor, ctx context.Context, s *session) {
		a.cards(ctx, call{method: "GET", path: "/cards?customerId=" + s.p.customerID, token: s.token})
	}},
	{1, func(a *actor, ctx context.Context, s *session) {
		if len(s.p.cards) > 0 {
			a.cards(ctx, call{method: "GET", path: "/cards/" + s.p.cards[a.intn(len(s.p.cards))].CardID, token: s.token})
		}
	}},
	{1, func(a *actor, ctx context.Context, s *session) {
		a.do(ctx, call{method: "GET", path: "/customers/" + s.p.customerID, token: s.token})
	}},
	{2, func(a *actor, ctx context.Context, s *session) { // pay someone, then look at the confirmation
		acc := a.ownAccount(s)
		payee := payees[a.intn(len(payees))]
		body, _ := json.Marshal(map[string]string{
			"debtorAccountId": acc.AccountID, "creditorIban": payee.iban, "creditorName": payee.name,
			"amount": a.amount(), "currency": acc.Currency, "reference": references[a.intn(len(references))],
		})
		r, o, ok := a.do(ctx, call{method: "POST", path: "/payments", token: s.token, body: string(body)})
		var p struct {
			PaymentID string `json:"paymentId"`
		}
		if ok && !o.Blocked && json.Unmarshal(r.Body, &p) == nil && p.PaymentID != "" {
			if sleep(ctx, a.between(minThink/2, minThink)) {
				a.do(ctx, call{method: "GET", path: "/payments/" + p.PaymentID, token: s.token})
			}
		}
	}},
	{1, func(a *actor, ctx context.Context, s *session) {
		acc := a.ownAccount(s)
		payee := payees[a.intn(len(payees))]
		body, _ := json.Marshal(map[string]any{
			"debtor":   map[string]string{"accountId": acc.AccountID},
			"creditor": map[string]string{"iban": payee.iban, "name": payee.name},
			"amount":   a.amount(), "currency": acc.Currency, "reference": references[a.intn(len(references))],
		})
		a.do(ctx, call{method: "POST", path: "/transfers", token: s.token, body: string(body)})
	}},
	{1, func(a *actor, ctx context.Context, s *session) {
		body, _ := json.Marshal(map[string]string{"nickname": nicknames[a.intn(len(nicknames))]})
		a.do(ctx, call{method: "PATCH", path: "/accounts/" + a.ownAccount(s).AccountID, token: s.token, body: string(body)})
	}},
	{1, func(a *actor, ctx context.Context, _ *session) { // the app's connectivity check
		a.do(ctx, call{method: "GET", path: "/health"})
	}},
}

// cards fetches the customer's own cards, which must arrive masked.
func (a *actor) cards(ctx context.Context, c call) {
	if r, o, ok := a.do(ctx, c); ok && !o.Blocked && LeaksPAN(r.Body) {
		a.g.rec.FullPAN()
		a.g.log.Warn("demo traffic: a full card number reached a customer", "path", c.path, "client", a.addr)
	}
}

func (a *actor) ownAccount(s *session) bank.Account {
	return s.p.accounts[a.intn(len(s.p.accounts))]
}

// amount is an everyday payment amount, 1.00 to maxPaymentMinor/100.
func (a *actor) amount() string {
	m := 100 + a.intn(maxPaymentMinor-100)
	return fmt.Sprintf("%d.%02d", m/100, m%100)
}

// payees are people and firms customers pay. The IBANs are the published
// examples of their countries' formats, with valid check digits.
var payees = []struct{ iban, name string }{
	{"GB33BUKB20201555555555", "Olivia Bennett"},
	{"GB94BARC10201530093459", "Greenfield Lettings Ltd"},
	{"GB29NWBK60161331926819", "Harper and Cole Plumbing"},
	{"DE89370400440532013000", "Lukas Schneider"},
	{"FR1420041010050500013M02606", "Camille Martin"},
	{"NL91ABNA0417164300", "Jansen Fietsen BV"},
}

var references = []string{"Rent July", "Invoice 2291", "Dinner split", "Birthday present", "Bike repair", "Council tax", "Holiday deposit", "Thanks"}

var nicknames = []string{"Everyday", "Bills", "Holiday fund", "Rainy day", "House deposit", "Joint spending"}
