package traffic

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwarkapi/bulwark/internal/demo/idp"
)

// Attack pacing. The probing attackers send a little over one request a
// second each, faster than a person (a customer sends about one every two
// seconds) and just over the demo's limit of 60 a minute, so the summary
// shows the protection that stops each attack and, once the limiter's
// burst is spent, the rate limit behind it. The two volume attacks are
// sized against the limits: the flood sends about 100 requests a second
// against 60 a minute (burst 5) per address, and the stuffing list about
// 15 sign-ins a second against 6 a minute (burst 3) per address, so that
// the few attempts a limiter lets through stay well under 5% even in a
// 10-second run.
const (
	probeInterval      = 800 * time.Millisecond // enumeration, forged tokens, injection, harvesting, mass assignment
	adminProbeInterval = time.Second
	stuffingInterval   = 66 * time.Millisecond
	// stuffingInFlight: sign-ins the gateway lets through are held by its
	// progressive delay (up to 2s); the attacker keeps going meanwhile.
	stuffingInFlight = 32
	floodBurst       = 50
	floodInterval    = 500 * time.Millisecond
	// floodBursts in flight at once: a slow burst does not hold the next.
	floodBursts       = 2
	attackerInFlight  = 4
	tokenRefreshAfter = 5 * time.Minute // well inside idp.DefaultLifetime
	// muleIBAN receives what the attackers try to pay out (a published
	// example IBAN with valid check digits).
	muleIBAN = "GB82WEST12345698765432"
	muleName = "Quick Cash Ltd"
)

// attack is one attacker: its kind, its user agent and its loop.
type attack struct {
	kind  Kind
	agent string
	run   func(ctx context.Context, a *actor)
}

// attacks builds the attackers. Those that need a valid token each use
// one of the attackers' own accounts.
func (g *Generator) attacks() []attack {
	own := func(i int) *tokenSource { return &tokenSource{g: g, p: g.attackers[i]} }
	enum, harvest, inject, flood, mass, admin := own(0), own(1), own(2), own(3), own(4), own(5)
	return []attack{
		{BOLAEnumeration, "python-requests/2.32.3", func(ctx context.Context, a *actor) { a.enumerate(ctx, enum) }},
		{JWTAlgNone, "curl/8.7.1", func(ctx context.Context, a *actor) { a.forge(ctx, false) }},
		{JWTKeyConfusion, "Go-http-client/2.0", func(ctx context.Context, a *actor) { a.forge(ctx, true) }},
		{CredentialStuffing, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0 Safari/537.36", func(ctx context.Context, a *actor) { a.stuff(ctx) }},
		{SQLInjection, "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", func(ctx context.Context, a *actor) { a.inject(ctx, inject) }},
		{CardHarvesting, "okhttp/4.12.0", func(ctx context.Context, a *actor) { a.harvest(ctx, harvest) }},
		{RequestFlood, "Go-http-client/2.0", func(ctx context.Context, a *actor) { a.flood(ctx, flood) }},
		{MassAssignment, "PostmanRuntime/7.39.0", func(ctx context.Context, a *actor) { a.massAssign(ctx, mass) }},
		{AdminAccess, "DemoBank-Android/5.12.0 (Pixel 8; Android 15) okhttp/4.12.0", func(ctx context.Context, a *actor) { a.adminProbe(ctx, admin) }},
	}
}

// tokenSource is an attacker's own, legitimately issued token, renewed
// before it expires.
type tokenSource struct {
	g   *Generator
	p   profile
	mu  sync.Mutex
	tok string
	at  time.Time
}

func (t *tokenSource) token() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok == "" || time.Since(t.at) > tokenRefreshAfter {
		t.tok, t.at = t.g.tokenFor(t.p), time.Now()
	}
	return t.tok
}

// victim is a benign customer picked by the attacker.
func (a *actor) victim() profile { return a.g.customers[a.intn(len(a.g.customers))] }

// guessID makes a syntactically valid id that likely belongs to nobody.
func (a *actor) guessID(prefix string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	b := []byte(prefix)
	for range 12 {
		b = append(b, alphabet[a.intn(len(alphabet))])
	}
	return string(b)
}

// enumerate walks other customers' objects with the attacker's own valid
// token: accounts, their transactions and statements, profiles, and
// payments out of a victim's account. One in five ids is guessed.
func (a *actor) enumerate(ctx context.Context, ts *tokenSource) {
	var n atomic.Int64
	pace(ctx, probeInterval, attackerInFlight, func(ctx context.Context) {
		v := a.victim()
		acc := v.accounts[a.intn(len(v.accounts))].AccountID
		if a.intn(5) == 0 {
			acc = a.guessID("acc_")
		}
		tok := ts.token()
		var c call
		switch (n.Add(1) - 1) % 6 {
		case 0:
			c = call{method: "GET", path: "/accounts/" + acc}
		case 1:
			c = call{method: "GET", path: "/accounts/" + acc + "/transactions?limit=500"}
		case 2:
			c = call{method: "GET", path: "/accounts/" + acc + "/statement"}
		case 3:
			c = call{method: "GET", path: "/customers/" + v.customerID}
		case 4:
			c = call{method: "GET", path: "/accounts?customerId=" + v.customerID}
		default:
			c = call{method: "POST", path: "/payments", body: paymentBody(acc, "GBP", "950.00", "Refund")}
		}
		c.token = tok
		a.do(ctx, c)
	})
}

func paymentBody(debtor, currency, amount, ref string) string {
	b, _ := json.Marshal(map[string]string{"debtorAccountId": debtor, "creditorIban": muleIBAN, "creditorName": muleName,
		"amount": amount, "currency": currency, "reference": ref})
	return string(b)
}

// forge presents tokens the identity provider never signed, claiming to
// be a victim with the bank-admin role: unsigned (alg "none" in its
// spellings), or, with confusion, HS256 signed with the provider's public
// key as the HMAC secret (a verifier that takes the algorithm from the
// token would accept it).
func (a *actor) forge(ctx context.Context, confusion bool) {
	pub := a.g.cfg.IdP.PublicKeyPEM()
	secrets := [][]byte{pub, []byte(string(pub[:len(pub)-1])), a.g.cfg.IdP.JWKS()}
	var n atomic.Int64
	pace(ctx, probeInterval, attackerInFlight, func(ctx context.Context) {
		v := a.victim()
		var accts, cards []string
		for _, x := range v.accounts {
			accts = append(accts, x.AccountID)
		}
		for _, x := range v.cards {
			cards = append(cards, x.CardID)
		}
		claims := a.g.cfg.IdP.Claims(v.customerID, accts, cards, []string{"customer", "bank-admin"})
		i := int(n.Add(1) - 1)
		var tok string
		if confusion {
			input := idp.Segment(map[string]any{"alg": "HS256", "typ": "JWT", "kid": a.g.cfg.IdP.KeyID()}) + "." + idp.Segment(claims)
			m := hmac.New(sha256.New, secrets[i%len(secrets)])
			m.Write([]byte(input))
			tok = input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
		} else {
			alg := []string{"none", "None", "NONE", "nOnE"}[i%4]
			tok = idp.Segment(map[string]any{"alg": alg, "typ": "JWT"}) + "." + idp.Segment(claims) + "."
		}
		targets := []call{
			{method: "GET", path: "/accounts?customerId=" + v.customerID},
			{method: "GET", path: "/accounts/" + accts[0] + "/transactions?limit=500"},
			{method: "GET", path: "/cards?customerId=" + v.customerID},
			{method: "GET", path: "/admin/customers"},
			{method: "POST", path: "/payments", body: paymentBody(v.accounts[0].AccountID, v.accounts[0].Currency, "1500.00", "Invoice 7731")},
		}
		c := targets[i%len(targets)]
		c.token = tok
		a.do(ctx, c)
	})
}

// stuff replays a leaked list of e-mail/password pairs against the login:
// many usernames, one wrong password each, from one address. The list's
// usernames are not this bank's (most leaked pairs are from elsewhere),
// so the real customers' accounts are not locked by it.
func (a *actor) stuff(ctx context.Context) {
	var n atomic.Int64
	pace(ctx, stuffingInterval, stuffingInFlight, func(ctx context.Context) {
		i := int(n.Add(1) - 1)
		first, last := firstNames[i%len(firstNames)], lastNames[(i/len(firstNames))%len(lastNames)]
		user := fmt.Sprintf("%s.%s%d@%s", first, last, 60+i%40, mailDomains[i%len(mailDomains)])
		body, _ := json.Marshal(map[string]string{"username": user, "password": leakedPasswords[i%len(leakedPasswords)]})
		a.do(ctx, call{method: "POST", path: "/login", body: string(body)})
	})
}

var (
	firstNames      = []string{"james", "mary", "robert", "patricia", "john", "jennifer", "michael", "linda", "david", "elizabeth", "william", "susan", "richard", "jessica"}
	lastNames       = []string{"smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "patel", "robinson", "wright", "thompson", "evans", "walker"}
	mailDomains     = []string{"mail.example", "inbox.example", "post.example"}
	leakedPasswords = []string{"123456", "password1", "qwerty123", "Summer2024", "iloveyou", "letmein", "Football1", "Passw0rd", "monkey12", "dragon2023"}
)

// inject sends SQL injection in query parameters, path parameters, JSON
// body fields and headers, with the attacker's own valid token (so that
// the contract and the WAF, not authentication, have to stop it).
func (a *actor) inject(ctx context.Context, ts *tokenSource) {
	p := ts.p
	acc, cus := p.accounts[0].AccountID, p.customerID
	q := url.QueryEscape
	calls := []call{
		// The first two break no rule of the contract (a header, free
		// text): only the WAF can catch them. The rest mix more of those
		// with values that also break the contract's patterns and types.
		{method: "GET", path: "/accounts?customerId=" + q(cus), header: map[string]string{"Referer": "https://bank.example/?q=1' UNION SELECT pan, cvv FROM cards--"}},
		{method: "POST", path: "/payments", body: paymentBodyWith(acc, "creditorName", "x' UNION SELECT password FROM users--")},
		{method: "GET", path: "/accounts?customerId=" + q(cus+"' OR '1'='1")},
		{method: "GET", path: "/accounts/" + acc + "/transactions?fromBookingDateTime=" + q("2025-01-01' OR 1=1--")},
		{method: "POST", path: "/payments", body: paymentBodyWith(acc, "reference", "1'; DROP TABLE payments;--")},
		{method: "GET", path: "/accounts?customerId=" + q(cus), header: map[string]string{"User-Agent": "Mozilla/5.0' AND (SELECT 1 FROM (SELECT SLEEP(5))x)--"}},
		{method: "GET", path: "/accounts?customerId=" + q(cus) + "&limit=" + q("10 UNION SELECT iban, balance FROM accounts--")},
		{method: "PATCH", path: "/accounts/" + acc, body: `{"nickname":"a' OR 1=1; UPDATE accounts SET balance=1e9--"}`},
		{method: "GET", path: "/accounts?customerId=" + q(cus), header: map[string]string{"Cookie": "session=1' OR '1'='1'--"}},
		{method: "GET", path: "/accounts/" + url.PathEscape(acc+"' OR '1'='1") + "/statement"},
		{method: "GET", path: "/cards?customerId=" + q(cus+"'; SELECT pan FROM cards; --")},
		{method: "POST", path: "/login", body: `{"username":"admin' OR '1'='1'--","password":"' OR ''='"}`},
	}
	var n atomic.Int64
	pace(ctx, probeInterval, attackerInFlight, func(ctx context.Context) {
		c := calls[int(n.Add(1)-1)%len(calls)]
		if c.path != "/login" {
			c.token = ts.token()
		}
		a.do(ctx, c)
	})
}

// paymentBodyWith is a valid payment from debtor with one field replaced.
func paymentBodyWith(debtor, field, value string) string {
	m := map[string]string{"debtorAccountId": debtor, "creditorIban": muleIBAN, "creditorName": muleName,
		"amount": "10.00", "currency": "GBP", "reference": "Invoice 88"}
	m[field] = value
	b, _ := json.Marshal(m)
	return string(b)
}

// harvest goes after card numbers with the attacker's own valid token:
// other customers' cards by id and by customer, every card at once, and
// the attacker's own cards, hoping the numbers come back whole.
func (a *actor) harvest(ctx context.Context, ts *tokenSource) {
	var n atomic.Int64
	pace(ctx, probeInterval, attackerInFlight, func(ctx context.Context) {
		v := a.victim()
		var c call
		switch (n.Add(1) - 1) % 5 {
		case 0:
			c = call{method: "GET", path: "/cards/" + v.cards[a.intn(len(v.cards))].CardID}
		case 1:
			c = call{method: "GET", path: "/cards?customerId=" + v.customerID}
		case 2:
			c = call{method: "GET", path: "/cards"}
		case 3:
			c = call{method: "GET", path: "/cards?customerId=" + ts.p.customerID}
		default:
			c = call{method: "GET", path: "/cards/" + ts.p.cards[0].CardID}
		}
		c.token = ts.token()
		a.do(ctx, c)
	})
}

// flood fires bursts from one address: the attacker's own account
// overview and the health check, as fast as it can.
func (a *actor) flood(ctx context.Context, ts *tokenSource) {
	var n atomic.Int64
	pace(ctx, floodInterval, floodBursts, func(ctx context.Context) {
		var wg sync.WaitGroup
		for range floodBurst {
			wg.Go(func() {
				if n.Add(1)%2 == 0 {
					a.do(ctx, call{method: "GET", path: "/health"})
				} else {
					a.do(ctx, call{method: "GET", path: "/accounts?customerId=" + ts.p.customerID, token: ts.token()})
				}
			})
		}
		wg.Wait()
	})
}

// massAssign sends payments, transfers and account updates for the
// attacker's own accounts with properties a client must not set: the
// payment's status, id and creation time, someone else's customer id, an
// account's balance and status.
func (a *actor) massAssign(ctx context.Context, ts *tokenSource) {
	p := ts.p
	acc := p.accounts[0]
	with := func(extra map[string]any) string {
		m := map[string]any{"debtorAccountId": acc.AccountID, "creditorIban": muleIBAN, "creditorName": muleName,
			"amount": "25.00", "currency": acc.Currency}
		for k, v := range extra {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	v := a.g.customers[0]
	calls := []call{
		{method: "POST", path: "/payments", body: with(map[string]any{"status": "Pending"})},
		{method: "POST", path: "/payments", body: with(map[string]any{"paymentId": "pay_aaaaaaaaaaaa"})},
		{method: "POST", path: "/payments", body: with(map[string]any{"createdAt": "2020-01-01T00:00:00Z"})},
		{method: "POST", path: "/payments", body: with(map[string]any{"customerId": v.customerID})},
		{method: "POST", path: "/payments", body: with(map[string]any{"fee": "0.00", "approved": true})},
		{method: "POST", path: "/transfers", body: fmt.Sprintf(`{"debtor":{"accountId":%q,"customerId":%q},"creditor":{"iban":%q,"name":%q},"amount":"25.00","currency":%q}`, acc.AccountID, v.customerID, muleIBAN, muleName, acc.Currency)},
		{method: "POST", path: "/transfers", body: fmt.Sprintf(`{"debtor":{"accountId":%q},"creditor":{"iban":%q,"name":%q},"amount":"25.00","currency":%q,"status":"Booked"}`, acc.AccountID, muleIBAN, muleName, acc.Currency)},
		{method: "PATCH", path: "/accounts/" + acc.AccountID, body: `{"nickname":"Main","balance":{"amount":"1000000.00","currency":"GBP"}}`},
		{method: "PATCH", path: "/accounts/" + acc.AccountID, body: fmt.Sprintf(`{"nickname":"Main","customerId":%q}`, v.customerID)},
		{method: "PATCH", path: "/accounts/" + acc.AccountID, body: `{"nickname":"Main","status":"Enabled","accountSubType":"Savings"}`},
	}
	var n atomic.Int64
	pace(ctx, probeInterval, attackerInFlight, func(ctx context.Context) {
		c := calls[int(n.Add(1)-1)%len(calls)]
		c.token = ts.token()
		a.do(ctx, c)
	})
}

// adminProbe calls the administrative customer listing with a customer's
// token, plainly and with path variants that a naive prefix check misses.
func (a *actor) adminProbe(ctx context.Context, ts *tokenSource) {
	paths := []string{"/admin/customers", "/admin/customers/", "/Admin/customers", "/admin/./customers", "/admin/customers?limit=1000", "/%61dmin/customers"}
	var n atomic.Int64
	pace(ctx, adminProbeInterval, attackerInFlight, func(ctx context.Context) {
		a.do(ctx, call{method: "GET", path: paths[int(n.Add(1)-1)%len(paths)], token: ts.token()})
	})
}
