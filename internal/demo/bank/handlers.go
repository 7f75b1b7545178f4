package bank

import (
	"net/http"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"
)

// Id and value formats; the OpenAPI document uses the same patterns.
var (
	customerIDRe = regexp.MustCompile(`^cus_[a-z2-7]{12}$`)
	amountRe     = regexp.MustCompile(`^[0-9]{1,9}\.[0-9]{2}$`)
	currencyRe   = regexp.MustCompile(`^[A-Z]{3}$`)
)

const (
	maxPayments    = 50000 // oldest payments are forgotten beyond this
	maxNameLen     = 70
	maxReferenceLn = 35
	tokenLifetime  = 3600 // seconds, advertised in the login response
)

// LoginResponse is the body of a successful POST /login.
type LoginResponse struct {
	Token      string `json:"token"`
	TokenType  string `json:"tokenType"`
	ExpiresIn  int    `json:"expiresIn"`
	CustomerID string `json:"customerId"`
}

// Statement is the body of the deprecated GET /accounts/{accountId}/statement.
type Statement struct {
	StatementID      string `json:"statementId"`
	AccountID        string `json:"accountId"`
	StartDateTime    string `json:"startDateTime"`
	EndDateTime      string `json:"endDateTime"`
	OpeningBalance   Money  `json:"openingBalance"`
	ClosingBalance   Money  `json:"closingBalance"`
	TotalCredits     Money  `json:"totalCredits"`
	TotalDebits      Money  `json:"totalDebits"`
	TransactionCount int    `json:"transactionCount"`
}

func (b *Bank) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username *string `json:"username"`
		Password *string `json:"password"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	var bad []InvalidParam
	if req.Username == nil || *req.Username == "" {
		bad = append(bad, InvalidParam{"username", "is required"})
	}
	if req.Password == nil || *req.Password == "" {
		bad = append(bad, InvalidParam{"password", "is required"})
	}
	if bad != nil {
		writeProblem(w, r, http.StatusBadRequest, "the request body is invalid", bad)
		return
	}
	id, ok := b.Authenticate(*req.Username, *req.Password)
	if !ok {
		writeProblem(w, r, http.StatusUnauthorized, "invalid username or password", nil)
		return
	}
	token := randomToken(32)
	b.mu.Lock()
	if len(b.tokenOrder) >= maxTokens {
		delete(b.tokens, b.tokenOrder[0])
		b.tokenOrder = b.tokenOrder[1:]
	}
	b.tokens[token] = id
	b.tokenOrder = append(b.tokenOrder, token)
	b.mu.Unlock()
	writeJSON(w, http.StatusOK, LoginResponse{Token: token, TokenType: "Bearer", ExpiresIn: tokenLifetime, CustomerID: id})
}

func (b *Bank) getCustomer(w http.ResponseWriter, r *http.Request) {
	c, ok := b.Customer(r.PathValue("customerId"))
	if !ok {
		writeProblem(w, r, http.StatusNotFound, "no such customer", nil)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (b *Bank) adminListCustomers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"customers": b.customers, "total": len(b.customers)})
}

// page reads the limit and offset query parameters.
func page(r *http.Request, defLimit, maxLimit int, bad *[]InvalidParam) (limit, offset int) {
	limit = intParam(r, "limit", defLimit, 1, maxLimit, bad)
	offset = intParam(r, "offset", 0, 0, 1<<31-1, bad)
	return limit, offset
}

func intParam(r *http.Request, name string, def, lo, hi int, bad *[]InvalidParam) int {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		*bad = append(*bad, InvalidParam{name, "must be an integer from " + strconv.Itoa(lo) + " to " + strconv.Itoa(hi)})
		return def
	}
	return v
}

func window[T any](s []T, limit, offset int) []T {
	if offset >= len(s) {
		return []T{}
	}
	return s[offset:min(len(s), offset+limit)]
}

func (b *Bank) listAccounts(w http.ResponseWriter, r *http.Request) {
	var bad []InvalidParam
	cid := r.URL.Query().Get("customerId")
	if cid != "" && !customerIDRe.MatchString(cid) {
		bad = append(bad, InvalidParam{"customerId", "must match " + customerIDRe.String()})
	}
	limit, offset := page(r, 20, 100, &bad)
	if bad != nil {
		writeProblem(w, r, http.StatusBadRequest, "invalid query parameters", bad)
		return
	}
	all := b.Accounts(cid)
	writeJSON(w, http.StatusOK, map[string]any{
		"accounts": window(all, limit, offset), "total": len(all), "limit": limit, "offset": offset,
	})
}

// account returns a copy of the account named in the path, or writes 404.
func (b *Bank) account(w http.ResponseWriter, r *http.Request) (Account, bool) {
	b.mu.RLock()
	a, ok := b.accountBy[r.PathValue("accountId")]
	var out Account
	if ok {
		out = *a
	}
	b.mu.RUnlock()
	if !ok {
		writeProblem(w, r, http.StatusNotFound, "no such account", nil)
	}
	return out, ok
}

func (b *Bank) getAccount(w http.ResponseWriter, r *http.Request) {
	if a, ok := b.account(w, r); ok {
		writeJSON(w, http.StatusOK, a)
	}
}

func (b *Bank) updateAccount(w http.ResponseWriter, r *http.Request) {
	if _, ok := b.account(w, r); !ok {
		return
	}
	// Only nickname is applied; every other property is silently ignored.
	var req struct {
		Nickname *string `json:"nickname"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	switch {
	case req.Nickname == nil:
		writeProblem(w, r, http.StatusBadRequest, "the request body is invalid", []InvalidParam{{"nickname", "is required"}})
		return
	case utf8.RuneCountInString(*req.Nickname) > maxNameLen:
		writeProblem(w, r, http.StatusBadRequest, "the request body is invalid", []InvalidParam{{"nickname", "must be at most 70 characters"}})
		return
	}
	b.mu.Lock()
	a := b.accountBy[r.PathValue("accountId")]
	a.Nickname = *req.Nickname
	out := *a
	b.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func timeParam(r *http.Request, name string, bad *[]InvalidParam) (time.Time, bool) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		*bad = append(*bad, InvalidParam{name, "must be an RFC 3339 date-time"})
		return time.Time{}, false
	}
	return t, true
}

func (b *Bank) listTransactions(w http.ResponseWriter, r *http.Request) {
	a, ok := b.account(w, r)
	if !ok {
		return
	}
	var bad []InvalidParam
	from, hasFrom := timeParam(r, "fromBookingDateTime", &bad)
	to, hasTo := timeParam(r, "toBookingDateTime", &bad)
	limit := intParam(r, "limit", 100, 1, 500, &bad)
	if hasFrom && hasTo && to.Before(from) {
		bad = append(bad, InvalidParam{"toBookingDateTime", "must not be before fromBookingDateTime"})
	}
	if bad != nil {
		writeProblem(w, r, http.StatusBadRequest, "invalid query parameters", bad)
		return
	}
	txs := []Transaction{}
	for _, t := range b.transactions(b.accountBy[a.AccountID]) {
		if hasFrom && t.booked.Before(from) || hasTo && t.booked.After(to) {
			continue
		}
		txs = append(txs, t)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"accountId": a.AccountID, "transactions": window(txs, limit, 0), "total": len(txs), "limit": limit,
	})
}

// Deprecation and sunset of the legacy statement endpoint (RFC 9745, RFC 8594).
const (
	statementDeprecation = "@1735689600" // 2025-01-01T00:00:00Z
	statementSunset      = "Wed, 31 Dec 2025 23:59:59 GMT"
)

func (b *Bank) getStatement(w http.ResponseWriter, r *http.Request) {
	a, ok := b.account(w, r)
	if !ok {
		return
	}
	end := time.Date(AsOf.Year(), AsOf.Month(), 1, 0, 0, 0, 0, time.UTC) // exclusive
	start := end.AddDate(0, -1, 0)
	var after, credits, debits int64
	n := 0
	for _, t := range b.transactions(b.accountBy[a.AccountID]) {
		switch {
		case !t.booked.Before(end):
			after += t.minor
		case !t.booked.Before(start):
			n++
			if t.minor > 0 {
				credits += t.minor
			} else {
				debits -= t.minor
			}
		}
	}
	closing := a.balanceMinor - after
	opening := closing - credits + debits
	money := func(m int64) Money { return Money{Amount: formatMinor(m), Currency: a.Currency} }
	h := w.Header()
	h.Set("Deprecation", statementDeprecation)
	h.Set("Sunset", statementSunset)
	h.Set("Link", "<"+BasePath+"/accounts/"+a.AccountID+"/transactions>; rel=\"successor-version\"")
	writeJSON(w, http.StatusOK, Statement{
		StatementID:      "stm_" + a.AccountID[len("acc_"):] + start.Format("200601"),
		AccountID:        a.AccountID,
		StartDateTime:    start.Format(time.RFC3339),
		EndDateTime:      end.Add(-time.Second).Format(time.RFC3339),
		OpeningBalance:   money(opening),
		ClosingBalance:   money(closing),
		TotalCredits:     money(credits),
		TotalDebits:      money(debits),
		TransactionCount: n,
	})
}

func (b *Bank) listCards(w http.ResponseWriter, r *http.Request) {
	cid := r.URL.Query().Get("customerId")
	if cid != "" && !customerIDRe.MatchString(cid) {
		writeProblem(w, r, http.StatusBadRequest, "invalid query parameters",
			[]InvalidParam{{"customerId", "must match " + customerIDRe.String()}})
		return
	}
	cards := b.Cards(cid)
	if cards == nil {
		cards = []Card{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"cards": cards, "total": len(cards)})
}

func (b *Bank) getCard(w http.ResponseWriter, r *http.Request) {
	i, ok := b.cardBy[r.PathValue("cardId")]
	if !ok {
		writeProblem(w, r, http.StatusNotFound, "no such card", nil)
		return
	}
	writeJSON(w, http.StatusOK, b.cards[i])
}

// paymentRequest is the flat form of a payment instruction.
type paymentRequest struct {
	DebtorAccountID *string `json:"debtorAccountId"`
	CreditorIBAN    *string `json:"creditorIban"`
	CreditorName    *string `json:"creditorName"`
	Amount          *string `json:"amount"`
	Currency        *string `json:"currency"`
	Reference       *string `json:"reference"`
}

func (b *Bank) createPayment(w http.ResponseWriter, r *http.Request) {
	var req paymentRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	b.initiate(w, r, req)
}

// createTransfer is createPayment with the parties nested, as many real
// payment APIs have them ({"debtor": {"accountId": ...}}): the demo's
// object rules must find an id inside a nested body too.
func (b *Bank) createTransfer(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Debtor *struct {
			AccountID *string `json:"accountId"`
		} `json:"debtor"`
		Creditor *struct {
			IBAN *string `json:"iban"`
			Name *string `json:"name"`
		} `json:"creditor"`
		Amount    *string `json:"amount"`
		Currency  *string `json:"currency"`
		Reference *string `json:"reference"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	flat := paymentRequest{Amount: req.Amount, Currency: req.Currency, Reference: req.Reference}
	if req.Debtor != nil {
		flat.DebtorAccountID = req.Debtor.AccountID
	}
	if req.Creditor != nil {
		flat.CreditorIBAN, flat.CreditorName = req.Creditor.IBAN, req.Creditor.Name
	}
	b.initiate(w, r, flat)
}

// initiate validates a payment instruction and records it.
func (b *Bank) initiate(w http.ResponseWriter, r *http.Request, req paymentRequest) {
	var bad []InvalidParam
	required := func(name string, v *string) bool {
		if v == nil || *v == "" {
			bad = append(bad, InvalidParam{name, "is required"})
			return false
		}
		return true
	}
	var debtor *Account
	if required("debtorAccountId", req.DebtorAccountID) {
		if debtor = b.accountBy[*req.DebtorAccountID]; debtor == nil {
			bad = append(bad, InvalidParam{"debtorAccountId", "no such account"})
		}
	}
	if required("creditorIban", req.CreditorIBAN) && !validIBAN(*req.CreditorIBAN) {
		bad = append(bad, InvalidParam{"creditorIban", "must be a valid IBAN without spaces"})
	}
	if required("creditorName", req.CreditorName) && utf8.RuneCountInString(*req.CreditorName) > maxNameLen {
		bad = append(bad, InvalidParam{"creditorName", "must be at most 70 characters"})
	}
	if required("amount", req.Amount) {
		if !amountRe.MatchString(*req.Amount) || isZero(*req.Amount) {
			bad = append(bad, InvalidParam{"amount", "must be a positive decimal with two fraction digits, e.g. 12.50"})
		}
	}
	if required("currency", req.Currency) {
		switch {
		case !currencyRe.MatchString(*req.Currency):
			bad = append(bad, InvalidParam{"currency", "must be an ISO 4217 code"})
		case debtor != nil && *req.Currency != debtor.Currency:
			bad = append(bad, InvalidParam{"currency", "must be the currency of the debtor account (" + debtor.Currency + ")"})
		}
	}
	ref := ""
	if req.Reference != nil {
		ref = *req.Reference
		if utf8.RuneCountInString(ref) > maxReferenceLn {
			bad = append(bad, InvalidParam{"reference", "must be at most 35 characters"})
		}
	}
	if bad != nil {
		writeProblem(w, r, http.StatusBadRequest, "the payment is invalid", bad)
		return
	}
	p := Payment{
		PaymentID:       "pay_" + randomToken(8)[:12],
		DebtorAccountID: *req.DebtorAccountID,
		CreditorIBAN:    *req.CreditorIBAN,
		CreditorName:    *req.CreditorName,
		Amount:          *req.Amount,
		Currency:        *req.Currency,
		Reference:       ref,
		Status:          "Pending",
		CreatedAt:       b.now().UTC().Format(time.RFC3339),
	}
	b.mu.Lock()
	if len(b.payments) >= maxPayments {
		delete(b.payments, b.paymentOrder[0])
		b.paymentOrder = b.paymentOrder[1:]
	}
	b.payments[p.PaymentID] = p
	b.paymentOrder = append(b.paymentOrder, p.PaymentID)
	b.mu.Unlock()
	w.Header().Set("Location", BasePath+"/payments/"+p.PaymentID)
	writeJSON(w, http.StatusCreated, p)
}

// isZero reports whether a decimal amount is zero.
func isZero(amount string) bool {
	for _, c := range amount {
		if c != '0' && c != '.' {
			return false
		}
	}
	return true
}

func (b *Bank) getPayment(w http.ResponseWriter, r *http.Request) {
	b.mu.RLock()
	p, ok := b.payments[r.PathValue("paymentId")]
	b.mu.RUnlock()
	if !ok {
		writeProblem(w, r, http.StatusNotFound, "no such payment", nil)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (b *Bank) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
