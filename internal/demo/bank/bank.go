package bank

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// BasePath is the path prefix under which every bank endpoint is served; it
// is also the single server URL of the embedded OpenAPI document.
const BasePath = "/api/v1"

const (
	// DefaultCustomers is the number of customers generated when
	// Options.Customers is zero or negative.
	DefaultCustomers = 10
	// MaxCustomers bounds Options.Customers to keep memory modest.
	MaxCustomers = 100000
	// MaxBodyBytes caps every request body the bank reads (413 beyond).
	MaxBodyBytes = 64 << 10
	// maxTokens bounds the remembered login tokens; the oldest is dropped.
	maxTokens = 4096
)

// AsOf is the fixed "current" date of the generated data: balances are as of
// this instant and transactions lie in the 90 days before it, so the data
// does not depend on the wall clock.
var AsOf = time.Date(2025, time.June, 30, 12, 0, 0, 0, time.UTC)

// Options configures a Bank.
type Options struct {
	// Seed makes the generated data reproducible: same seed, same data.
	Seed int64
	// Customers is the number of customers (default 10, at most MaxCustomers).
	Customers int
	// Now returns the current time for run-time records (payments); nil
	// means time.Now.
	Now func() time.Time
}

// Address is a UK postal address.
type Address struct {
	Line1    string `json:"line1"`
	Line2    string `json:"line2,omitempty"`
	City     string `json:"city"`
	Postcode string `json:"postcode"`
	Country  string `json:"country"`
}

// Customer is a bank customer's profile. It carries personal data on purpose
// (email, phone, date of birth, National Insurance number) for the sensitive
// data detectors.
type Customer struct {
	CustomerID              string  `json:"customerId"`
	Username                string  `json:"username"`
	FirstName               string  `json:"firstName"`
	LastName                string  `json:"lastName"`
	Email                   string  `json:"email"`
	Phone                   string  `json:"phone"`
	DateOfBirth             string  `json:"dateOfBirth"`
	NationalInsuranceNumber string  `json:"nationalInsuranceNumber"`
	Address                 Address `json:"address"`
	CreatedAt               string  `json:"createdAt"`
}

// Money is an amount with two decimals as a string, and its ISO 4217 currency.
type Money struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// Account is a current or savings account.
type Account struct {
	AccountID      string `json:"accountId"`
	CustomerID     string `json:"customerId"`
	AccountType    string `json:"accountType"`    // Personal
	AccountSubType string `json:"accountSubType"` // CurrentAccount | Savings
	Nickname       string `json:"nickname,omitempty"`
	IBAN           string `json:"iban"`
	SortCode       string `json:"sortCode"`
	AccountNumber  string `json:"accountNumber"`
	Currency       string `json:"currency"`
	Balance        Money  `json:"balance"`
	Status         string `json:"status"` // Enabled | Disabled
	OpenedAt       string `json:"openedAt"`

	balanceMinor int64
	txSeed       uint64
}

// Transaction is a booked transaction on an account.
type Transaction struct {
	TransactionID        string `json:"transactionId"`
	AccountID            string `json:"accountId"`
	Amount               string `json:"amount"`
	Currency             string `json:"currency"`
	CreditDebitIndicator string `json:"creditDebitIndicator"` // Credit | Debit
	Status               string `json:"status"`               // Booked
	BookingDateTime      string `json:"bookingDateTime"`
	MerchantName         string `json:"merchantName"`
	Reference            string `json:"reference"`

	minor  int64 // signed: credits positive
	booked time.Time
}

// Card is a payment card. PAN is the full card number, returned on purpose.
type Card struct {
	CardID         string `json:"cardId"`
	CustomerID     string `json:"customerId"`
	AccountID      string `json:"accountId"`
	Brand          string `json:"brand"` // Visa | Mastercard
	Type           string `json:"type"`  // Debit | Credit
	PAN            string `json:"pan"`
	Expiry         string `json:"expiry"` // MM/YY
	CardholderName string `json:"cardholderName"`
	Status         string `json:"status"` // Active | Blocked
}

// Payment is a domestic or international credit transfer.
type Payment struct {
	PaymentID       string `json:"paymentId"`
	DebtorAccountID string `json:"debtorAccountId"`
	CreditorIBAN    string `json:"creditorIban"`
	CreditorName    string `json:"creditorName"`
	Amount          string `json:"amount"`
	Currency        string `json:"currency"`
	Reference       string `json:"reference,omitempty"`
	Status          string `json:"status"` // Pending
	CreatedAt       string `json:"createdAt"`
}

// Bank is the in-memory sample bank. Create it with New.
type Bank struct {
	seed uint64
	now  func() time.Time

	// Generated at New and never modified afterwards.
	customers  []Customer
	customerBy map[string]int
	usernameBy map[string]int
	accounts   []*Account // order of generation; Nickname guarded by mu
	accountBy  map[string]*Account
	cards      []Card
	cardBy     map[string]int

	mu           sync.RWMutex
	payments     map[string]Payment
	paymentOrder []string
	tokens       map[string]string // token -> customerId
	tokenOrder   []string
}

// New generates a bank from opts; the same Seed and Customers give the same data.
func New(opts Options) *Bank {
	n := opts.Customers
	if n <= 0 {
		n = DefaultCustomers
	}
	n = min(n, MaxCustomers)
	b := &Bank{
		seed:       uint64(opts.Seed),
		now:        opts.Now,
		customerBy: make(map[string]int, n),
		usernameBy: make(map[string]int, n),
		accountBy:  make(map[string]*Account, 3*n),
		cardBy:     make(map[string]int, 2*n),
		payments:   make(map[string]Payment),
		tokens:     make(map[string]string),
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.generate(n)
	return b
}

// Handler returns the bank's HTTP handler: a ServeMux with one method+path
// pattern per entry of Routes, under BasePath. Unknown paths get 404 and
// known paths with another method 405, both as application/problem+json.
func (b *Bank) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routeTable {
		h := rt.handler
		mux.HandleFunc(rt.pattern(), func(w http.ResponseWriter, r *http.Request) { h(b, w, r) })
	}
	return fallback{mux: mux}
}

// Credentials returns the demo-only login of customer n (1-based):
// "customerN" / "passwordN". They exist for the local demo and tests only.
func Credentials(n int) (username, password string) {
	return fmt.Sprintf("customer%d", n), fmt.Sprintf("password%d", n)
}

// Authenticate checks demo credentials (see Credentials) and returns the
// customer's id. A later identity provider can sign in against it.
func (b *Bank) Authenticate(username, password string) (customerID string, ok bool) {
	i, ok := b.usernameBy[username]
	if !ok {
		return "", false
	}
	if _, want := Credentials(i + 1); subtle.ConstantTimeCompare([]byte(password), []byte(want)) != 1 {
		return "", false
	}
	return b.customers[i].CustomerID, true
}

// Customers returns every customer in order (customer1 first).
func (b *Bank) Customers() []Customer { return slices.Clone(b.customers) }

// Customer returns the customer with the given id.
func (b *Bank) Customer(customerID string) (Customer, bool) {
	i, ok := b.customerBy[customerID]
	if !ok {
		return Customer{}, false
	}
	return b.customers[i], true
}

// Accounts returns the accounts of a customer, or of everyone when
// customerID is empty, in generation order.
func (b *Bank) Accounts(customerID string) []Account {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []Account
	for _, a := range b.accounts {
		if customerID == "" || a.CustomerID == customerID {
			out = append(out, *a)
		}
	}
	return out
}

// Cards returns the cards of a customer, or of everyone when customerID is
// empty, in generation order.
func (b *Bank) Cards(customerID string) []Card {
	var out []Card
	for _, c := range b.cards {
		if customerID == "" || c.CustomerID == customerID {
			out = append(out, c)
		}
	}
	return out
}

// Transactions returns the transactions of an account, newest first.
func (b *Bank) Transactions(accountID string) ([]Transaction, bool) {
	a, ok := b.accountBy[accountID]
	if !ok {
		return nil, false
	}
	return b.transactions(a), true
}

// CustomerForToken reports which customer a token from POST /login was
// issued to. The bank itself never checks tokens.
func (b *Bank) CustomerForToken(token string) (string, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	id, ok := b.tokens[token]
	return id, ok
}

// Route is one operation of the bank API as registered in its ServeMux and
// described in its OpenAPI document.
type Route struct {
	Method      string // GET, POST, PATCH
	Path        string // OpenAPI path template relative to BasePath, e.g. /accounts/{accountId}
	OperationID string
}

// Routes returns every operation of the bank API, in registration order.
func Routes() []Route {
	out := make([]Route, len(routeTable))
	for i, rt := range routeTable {
		out[i] = rt.Route
	}
	return out
}

type route struct {
	Route
	handler func(b *Bank, w http.ResponseWriter, r *http.Request)
}

func (rt route) pattern() string { return rt.Method + " " + BasePath + rt.Path }

// routeTable is the single list of operations: the mux is built from it and
// the tests check it against the embedded OpenAPI document both ways.
var routeTable = []route{
	{Route{"POST", "/login", "login"}, (*Bank).login},
	{Route{"GET", "/customers/{customerId}", "getCustomer"}, (*Bank).getCustomer},
	{Route{"GET", "/accounts", "listAccounts"}, (*Bank).listAccounts},
	{Route{"GET", "/accounts/{accountId}", "getAccount"}, (*Bank).getAccount},
	{Route{"PATCH", "/accounts/{accountId}", "updateAccount"}, (*Bank).updateAccount},
	{Route{"GET", "/accounts/{accountId}/transactions", "listTransactions"}, (*Bank).listTransactions},
	{Route{"GET", "/accounts/{accountId}/statement", "getStatement"}, (*Bank).getStatement},
	{Route{"GET", "/cards", "listCards"}, (*Bank).listCards},
	{Route{"GET", "/cards/{cardId}", "getCard"}, (*Bank).getCard},
	{Route{"POST", "/payments", "createPayment"}, (*Bank).createPayment},
	{Route{"POST", "/transfers", "createTransfer"}, (*Bank).createTransfer},
	{Route{"GET", "/payments/{paymentId}", "getPayment"}, (*Bank).getPayment},
	{Route{"GET", "/admin/customers", "adminListCustomers"}, (*Bank).adminListCustomers},
	{Route{"GET", "/health", "health"}, (*Bank).health},
}

// fallback turns the mux's plain-text 404 and 405 into problem+json.
type fallback struct{ mux *http.ServeMux }

func (f fallback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := f.mux.Handler(r); pattern != "" {
		f.mux.ServeHTTP(w, r)
		return
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := f.mux.Handler(probe); p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		if slices.Contains(allow, http.MethodGet) {
			allow = append(allow, http.MethodHead)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeProblem(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here", nil)
		return
	}
	writeProblem(w, r, http.StatusNotFound, "no such resource", nil)
}
