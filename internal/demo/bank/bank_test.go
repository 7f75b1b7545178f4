package bank

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var testNow = time.Date(2025, time.July, 1, 9, 30, 0, 0, time.UTC)

func newTestBank() *Bank {
	return New(Options{Seed: 42, Now: func() time.Time { return testNow }})
}

func do(h http.Handler, method, target, contentType, body string) *httptest.ResponseRecorder {
	var req *http.Request
	if body == "" && contentType == "" {
		req = httptest.NewRequest(method, target, nil)
	} else {
		req = httptest.NewRequest(method, target, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decode(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return m
}

func invalidNames(m map[string]any) []string {
	var out []string
	for _, p := range asSlice(m["invalidParams"]) {
		out = append(out, p.(map[string]any)["name"].(string))
	}
	return out
}

func TestEndpoints(t *testing.T) {
	b := newTestBank()
	h := b.Handler()
	_, raw := loadSpec(t)
	c1 := b.Customers()[0]
	acc := b.Accounts(c1.CustomerID)[0]
	card := b.Cards(c1.CustomerID)[0]
	other := b.Customers()[1]
	const js = "application/json"
	pay := func(mut func(m map[string]any)) string {
		m := map[string]any{"debtorAccountId": acc.AccountID, "creditorIban": "GB82WEST12345698765432",
			"creditorName": "Seán O'Connor", "amount": "125.50", "currency": acc.Currency, "reference": "O'Brien rent Jan"}
		if mut != nil {
			mut(m)
		}
		out, _ := json.Marshal(m)
		return string(out)
	}

	tests := []struct {
		name, op, method, target, ctype, body string
		status                                int
		check                                 func(t *testing.T, m map[string]any, rec *httptest.ResponseRecorder)
	}{
		{name: "login ok", op: "login", method: "POST", target: "/login", ctype: js, body: `{"username":"customer1","password":"password1"}`, status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				tok, _ := m["token"].(string)
				if m["customerId"] != c1.CustomerID || len(tok) < 40 {
					t.Errorf("login = %v", m)
				}
				if id, ok := b.CustomerForToken(tok); !ok || id != c1.CustomerID {
					t.Errorf("CustomerForToken = %q, %v", id, ok)
				}
			}},
		{name: "login last customer", op: "login", method: "POST", target: "/login", ctype: js, body: `{"username":"customer10","password":"password10"}`, status: 200},
		{name: "login wrong password", op: "login", method: "POST", target: "/login", ctype: js, body: `{"username":"customer1","password":"password2"}`, status: 401},
		{name: "login unknown user", op: "login", method: "POST", target: "/login", ctype: js, body: `{"username":"customer11","password":"password11"}`, status: 401},
		{name: "login sql injection is just wrong", op: "login", method: "POST", target: "/login", ctype: js, body: `{"username":"customer1' OR '1'='1","password":"x"}`, status: 401},
		{name: "login missing fields", op: "login", method: "POST", target: "/login", ctype: js, body: `{}`, status: 400,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if got := invalidNames(m); !reflect.DeepEqual(got, []string{"username", "password"}) {
					t.Errorf("invalidParams = %v", got)
				}
			}},
		{name: "login malformed json", op: "login", method: "POST", target: "/login", ctype: js, body: `{"username":`, status: 400},
		{name: "login trailing data", op: "login", method: "POST", target: "/login", ctype: js, body: `{"username":"a","password":"b"} {}`, status: 400},
		{name: "login wrong type", op: "login", method: "POST", target: "/login", ctype: js, body: `{"username":1,"password":"b"}`, status: 400},
		{name: "login form body", op: "login", method: "POST", target: "/login", ctype: "application/x-www-form-urlencoded", body: `username=customer1`, status: 415},
		{name: "login too large", op: "login", method: "POST", target: "/login", ctype: js, body: `{"username":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, status: 413},

		{name: "customer", op: "getCustomer", method: "GET", target: "/customers/" + c1.CustomerID, status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if m["customerId"] != c1.CustomerID || m["username"] != "customer1" {
					t.Errorf("customer = %v", m)
				}
			}},
		{name: "customer unknown", op: "getCustomer", method: "GET", target: "/customers/cus_aaaaaaaaaaaa", status: 404},
		{name: "customer malformed", op: "getCustomer", method: "GET", target: "/customers/1", status: 404},

		{name: "accounts all", op: "listAccounts", method: "GET", target: "/accounts", status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if int(m["total"].(float64)) != len(b.Accounts("")) || m["limit"] != 20.0 {
					t.Errorf("total %v limit %v", m["total"], m["limit"])
				}
			}},
		{name: "accounts of customer", op: "listAccounts", method: "GET", target: "/accounts?customerId=" + other.CustomerID, status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				for _, a := range asSlice(m["accounts"]) {
					if a.(map[string]any)["customerId"] != other.CustomerID {
						t.Errorf("account of another customer: %v", a)
					}
				}
				if int(m["total"].(float64)) != len(b.Accounts(other.CustomerID)) {
					t.Errorf("total = %v", m["total"])
				}
			}},
		{name: "accounts page", op: "listAccounts", method: "GET", target: "/accounts?limit=2&offset=1", status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				got := asSlice(m["accounts"])
				if len(got) != 2 || got[0].(map[string]any)["accountId"] != b.Accounts("")[1].AccountID {
					t.Errorf("page = %v", got)
				}
			}},
		{name: "accounts beyond the end", op: "listAccounts", method: "GET", target: "/accounts?offset=100000", status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if len(asSlice(m["accounts"])) != 0 {
					t.Errorf("accounts = %v", m["accounts"])
				}
			}},
		{name: "accounts unknown customer", op: "listAccounts", method: "GET", target: "/accounts?customerId=cus_aaaaaaaaaaaa", status: 200},
		{name: "accounts bad query", op: "listAccounts", method: "GET", target: "/accounts?limit=0&offset=-1&customerId=x", status: 400,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if got := invalidNames(m); !reflect.DeepEqual(got, []string{"customerId", "limit", "offset"}) {
					t.Errorf("invalidParams = %v", got)
				}
			}},
		{name: "accounts limit too big", op: "listAccounts", method: "GET", target: "/accounts?limit=101", status: 400},

		{name: "account", op: "getAccount", method: "GET", target: "/accounts/" + acc.AccountID, status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if m["iban"] != acc.IBAN || m["customerId"] != c1.CustomerID {
					t.Errorf("account = %v", m)
				}
			}},
		{name: "account of someone else is served (BOLA by design)", op: "getAccount", method: "GET", target: "/accounts/" + b.Accounts(other.CustomerID)[0].AccountID, status: 200},
		{name: "account unknown", op: "getAccount", method: "GET", target: "/accounts/acc_aaaaaaaaaaaa", status: 404},

		{name: "nickname", op: "updateAccount", method: "PATCH", target: "/accounts/" + acc.AccountID, ctype: js,
			body: `{"nickname":"Bills & rent","balance":{"amount":"1000000.00","currency":"GBP"},"status":"Disabled"}`, status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				got := b.Accounts(c1.CustomerID)[0]
				if m["nickname"] != "Bills & rent" || got.Nickname != "Bills & rent" {
					t.Errorf("nickname not applied: %v", m)
				}
				if got.Balance != acc.Balance || got.Status != acc.Status {
					t.Errorf("extra properties were applied: %+v", got)
				}
			}},
		{name: "nickname missing", op: "updateAccount", method: "PATCH", target: "/accounts/" + acc.AccountID, ctype: js, body: `{"status":"Enabled"}`, status: 400},
		{name: "nickname too long", op: "updateAccount", method: "PATCH", target: "/accounts/" + acc.AccountID, ctype: js, body: `{"nickname":"` + strings.Repeat("x", 71) + `"}`, status: 400},
		{name: "nickname not json", op: "updateAccount", method: "PATCH", target: "/accounts/" + acc.AccountID, ctype: "text/plain", body: `x`, status: 415},
		{name: "nickname unknown account", op: "updateAccount", method: "PATCH", target: "/accounts/acc_aaaaaaaaaaaa", ctype: js, body: `{"nickname":"x"}`, status: 404},

		{name: "transactions", op: "listTransactions", method: "GET", target: "/accounts/" + acc.AccountID + "/transactions", status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				txs := asSlice(m["transactions"])
				if len(txs) == 0 || int(m["total"].(float64)) != len(txs) {
					t.Fatalf("transactions: total %v, %d items", m["total"], len(txs))
				}
				var prev string
				apostrophe := false
				for _, x := range txs {
					tx := x.(map[string]any)
					at := tx["bookingDateTime"].(string)
					if prev != "" && at > prev {
						t.Errorf("not newest first: %s after %s", at, prev)
					}
					prev = at
					apostrophe = apostrophe || strings.Contains(tx["reference"].(string), "O'Brien rent")
				}
				if !apostrophe {
					t.Errorf("no \"O'Brien rent\" reference in %v", txs)
				}
			}},
		{name: "transactions window", op: "listTransactions", method: "GET",
			target: "/accounts/" + acc.AccountID + "/transactions?fromBookingDateTime=2025-05-01T00:00:00Z&toBookingDateTime=2025-05-31T23:59:59Z&limit=3", status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				txs := asSlice(m["transactions"])
				if len(txs) != 3 || m["total"].(float64) < 3 {
					t.Fatalf("window: total %v, %d items", m["total"], len(txs))
				}
				for _, x := range txs {
					if at := x.(map[string]any)["bookingDateTime"].(string); !strings.HasPrefix(at, "2025-05-") {
						t.Errorf("outside the window: %s", at)
					}
				}
			}},
		{name: "transactions bad dates", op: "listTransactions", method: "GET", target: "/accounts/" + acc.AccountID + "/transactions?fromBookingDateTime=yesterday&limit=501", status: 400,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if got := invalidNames(m); !reflect.DeepEqual(got, []string{"fromBookingDateTime", "limit"}) {
					t.Errorf("invalidParams = %v", got)
				}
			}},
		{name: "transactions inverted window", op: "listTransactions", method: "GET",
			target: "/accounts/" + acc.AccountID + "/transactions?fromBookingDateTime=2025-05-02T00:00:00Z&toBookingDateTime=2025-05-01T00:00:00Z", status: 400},
		{name: "transactions unknown account", op: "listTransactions", method: "GET", target: "/accounts/acc_aaaaaaaaaaaa/transactions", status: 404},

		{name: "statement", op: "getStatement", method: "GET", target: "/accounts/" + acc.AccountID + "/statement", status: 200,
			check: func(t *testing.T, m map[string]any, rec *httptest.ResponseRecorder) {
				if rec.Header().Get("Deprecation") == "" || m["startDateTime"] != "2025-05-01T00:00:00Z" {
					t.Errorf("statement = %v, headers %v", m, rec.Header())
				}
			}},
		{name: "statement unknown account", op: "getStatement", method: "GET", target: "/accounts/acc_aaaaaaaaaaaa/statement", status: 404},

		{name: "cards all", op: "listCards", method: "GET", target: "/cards", status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if int(m["total"].(float64)) != len(b.Cards("")) {
					t.Errorf("total = %v", m["total"])
				}
			}},
		{name: "cards of customer", op: "listCards", method: "GET", target: "/cards?customerId=" + c1.CustomerID, status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if int(m["total"].(float64)) != len(b.Cards(c1.CustomerID)) {
					t.Errorf("total = %v", m["total"])
				}
			}},
		{name: "cards of unknown customer", op: "listCards", method: "GET", target: "/cards?customerId=cus_aaaaaaaaaaaa", status: 200},
		{name: "cards bad customer", op: "listCards", method: "GET", target: "/cards?customerId=abc", status: 400},
		{name: "card with pan", op: "getCard", method: "GET", target: "/cards/" + card.CardID, status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if m["pan"] != card.PAN || !luhnValid(card.PAN) {
					t.Errorf("card = %v", m)
				}
			}},
		{name: "card unknown", op: "getCard", method: "GET", target: "/cards/card_aaaaaaaaaaaa", status: 404},

		{name: "payment", op: "createPayment", method: "POST", target: "/payments", ctype: js, body: pay(nil), status: 201,
			check: func(t *testing.T, m map[string]any, rec *httptest.ResponseRecorder) {
				loc := rec.Header().Get("Location")
				if m["status"] != "Pending" || m["createdAt"] != "2025-07-01T09:30:00Z" || loc != BasePath+"/payments/"+m["paymentId"].(string) {
					t.Fatalf("payment = %v, Location %q", m, loc)
				}
				got := do(h, "GET", loc, "", "")
				checkResponse(t, raw, "getPayment", got)
				if got.Code != 200 || decode(t, got)["reference"] != "O'Brien rent Jan" {
					t.Errorf("GET %s = %d %s", loc, got.Code, got.Body)
				}
			}},
		{name: "transfer with nested parties", op: "createTransfer", method: "POST", target: "/transfers", ctype: js,
			body: `{"debtor":{"accountId":"` + acc.AccountID + `"},"creditor":{"iban":"GB82WEST12345698765432","name":"Seán O'Connor"},"amount":"12.50","currency":"` + acc.Currency + `"}`, status: 201,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if m["debtorAccountId"] != acc.AccountID || m["creditorName"] != "Seán O'Connor" {
					t.Fatalf("transfer = %v", m)
				}
			}},
		{name: "transfer without debtor", op: "createTransfer", method: "POST", target: "/transfers", ctype: js,
			body: `{"creditor":{"iban":"GB82WEST12345698765432","name":"A"},"amount":"1.00","currency":"GBP"}`, status: 400},
		{name: "payment without reference", op: "createPayment", method: "POST", target: "/payments", ctype: js,
			body: pay(func(m map[string]any) { delete(m, "reference") }), status: 201},
		{name: "payment missing everything", op: "createPayment", method: "POST", target: "/payments", ctype: js, body: `{}`, status: 400,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				want := []string{"debtorAccountId", "creditorIban", "creditorName", "amount", "currency"}
				if got := invalidNames(m); !reflect.DeepEqual(got, want) {
					t.Errorf("invalidParams = %v, want %v", got, want)
				}
			}},
		{name: "payment bad iban", op: "createPayment", method: "POST", target: "/payments", ctype: js,
			body: pay(func(m map[string]any) { m["creditorIban"] = "GB83WEST12345698765432" }), status: 400},
		{name: "payment zero amount", op: "createPayment", method: "POST", target: "/payments", ctype: js,
			body: pay(func(m map[string]any) { m["amount"] = "0.00" }), status: 400},
		{name: "payment numeric amount", op: "createPayment", method: "POST", target: "/payments", ctype: js,
			body: pay(func(m map[string]any) { m["amount"] = 12.5 }), status: 400,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if got := invalidNames(m); !reflect.DeepEqual(got, []string{"amount"}) {
					t.Errorf("invalidParams = %v", got)
				}
			}},
		{name: "payment wrong currency", op: "createPayment", method: "POST", target: "/payments", ctype: js,
			body: pay(func(m map[string]any) { m["currency"] = "JPY" }), status: 400},
		{name: "payment unknown debtor", op: "createPayment", method: "POST", target: "/payments", ctype: js,
			body: pay(func(m map[string]any) { m["debtorAccountId"] = "acc_aaaaaaaaaaaa" }), status: 400},
		{name: "payment long reference", op: "createPayment", method: "POST", target: "/payments", ctype: js,
			body: pay(func(m map[string]any) { m["reference"] = strings.Repeat("r", 36) }), status: 400},
		{name: "payment unknown", op: "getPayment", method: "GET", target: "/payments/pay_aaaaaaaaaaaa", status: 404},

		{name: "admin customers", op: "adminListCustomers", method: "GET", target: "/admin/customers", status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if m["total"] != float64(DefaultCustomers) || len(asSlice(m["customers"])) != DefaultCustomers {
					t.Errorf("total = %v", m["total"])
				}
			}},
		{name: "health", op: "health", method: "GET", target: "/health", status: 200,
			check: func(t *testing.T, m map[string]any, _ *httptest.ResponseRecorder) {
				if m["status"] != "ok" {
					t.Errorf("health = %v", m)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(h, tc.method, BasePath+tc.target, tc.ctype, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("%s %s = %d, want %d: %s", tc.method, tc.target, rec.Code, tc.status, rec.Body)
			}
			checkResponse(t, raw, tc.op, rec)
			if tc.check != nil {
				tc.check(t, decode(t, rec), rec)
			}
		})
	}
}

func TestUnknownRoutes(t *testing.T) {
	h := newTestBank().Handler()
	tests := []struct {
		method, target string
		status         int
		allow          string
	}{
		{"GET", BasePath + "/nope", 404, ""},
		{"GET", "/health", 404, ""},
		{"DELETE", BasePath + "/accounts/acc_aaaaaaaaaaaa", 405, "GET, PATCH, HEAD"},
		{"PUT", BasePath + "/payments", 405, "POST"},
	}
	for _, tc := range tests {
		rec := do(h, tc.method, tc.target, "", "")
		if rec.Code != tc.status || rec.Header().Get("Allow") != tc.allow ||
			rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s = %d Allow %q %s", tc.method, tc.target, rec.Code, rec.Header().Get("Allow"), rec.Header().Get("Content-Type"))
		}
	}
}

func TestDeterminism(t *testing.T) {
	a, b := New(Options{Seed: 7}), New(Options{Seed: 7})
	if !reflect.DeepEqual(a.Customers(), b.Customers()) || !reflect.DeepEqual(a.Accounts(""), b.Accounts("")) ||
		!reflect.DeepEqual(a.Cards(""), b.Cards("")) {
		t.Fatal("same seed, different data")
	}
	acc := a.Accounts("")[0]
	if acc.AccountID != b.Accounts("")[0].AccountID || acc.IBAN != b.Accounts("")[0].IBAN {
		t.Fatal("first account differs")
	}
	ta, _ := a.Transactions(acc.AccountID)
	tb, _ := b.Transactions(acc.AccountID)
	if !reflect.DeepEqual(ta, tb) {
		t.Fatal("same seed, different transactions")
	}
	// Customer N does not depend on how many customers there are.
	small, big := New(Options{Seed: 7, Customers: 3}), New(Options{Seed: 7, Customers: 50})
	if !reflect.DeepEqual(small.Customers()[2], big.Customers()[2]) || len(big.Customers()) != 50 {
		t.Fatal("customer 3 depends on the customer count")
	}
	if c := New(Options{Seed: 8}); c.Accounts("")[0].AccountID == acc.AccountID {
		t.Fatal("different seeds, same first account")
	}
	// Two handlers over equal banks answer byte-for-byte the same.
	for _, target := range []string{"/accounts", "/cards", "/admin/customers", "/accounts/" + acc.AccountID + "/transactions", "/accounts/" + acc.AccountID + "/statement"} {
		ra, rb := do(a.Handler(), "GET", BasePath+target, "", ""), do(b.Handler(), "GET", BasePath+target, "", "")
		if ra.Body.String() != rb.Body.String() {
			t.Errorf("GET %s differs between equal banks", target)
		}
	}
}

// luhnValid and ibanValid are written independently of the generator.
func luhnValid(pan string) bool {
	sum := 0
	for i := range len(pan) {
		d := int(pan[len(pan)-1-i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return len(pan) >= 12 && sum%10 == 0
}

func ibanValid(iban string) bool {
	s := iban[4:] + iban[:4]
	rem := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			rem = (rem*10 + int(r-'0')) % 97
		case r >= 'A' && r <= 'Z':
			rem = (rem*100 + int(r-'A'+10)) % 97
		default:
			return false
		}
	}
	return rem == 1
}

func TestGeneratedData(t *testing.T) {
	for _, seed := range []int64{0, 1, 42, -5} {
		b := New(Options{Seed: seed, Customers: 200})
		seen := map[string]bool{}
		unique := func(kind, v string) {
			if seen[v] {
				t.Errorf("seed %d: duplicate %s %s", seed, kind, v)
			}
			seen[v] = true
		}
		patterns := map[string]*regexp.Regexp{
			"phone": regexp.MustCompile(`^\+447700900[0-9]{3}$`),
			"nino":  regexp.MustCompile(`^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][0-9]{6}[A-D]$`),
			"iban":  regexp.MustCompile(`^GB[0-9]{2}BLWK[0-9]{14}$`),
			"acc":   regexp.MustCompile(`^acc_[a-z2-7]{12}$`),
			"card":  regexp.MustCompile(`^card_[a-z2-7]{12}$`),
			"visa":  regexp.MustCompile(`^4[0-9]{15}$`),
			"mc":    regexp.MustCompile(`^(5[1-5][0-9]{14}|(222[1-9]|22[3-9][0-9]|2[3-6][0-9]{2}|27[01][0-9]|2720)[0-9]{12})$`),
		}
		for _, c := range b.Customers() {
			unique("customer", c.CustomerID)
			unique("email", c.Email)
			if !customerIDRe.MatchString(c.CustomerID) || !patterns["phone"].MatchString(c.Phone) || !patterns["nino"].MatchString(c.NationalInsuranceNumber) {
				t.Errorf("seed %d: malformed customer %+v", seed, c)
			}
			for _, bad := range []string{"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"} {
				if strings.HasPrefix(c.NationalInsuranceNumber, bad) {
					t.Errorf("unallocated NINO prefix: %s", c.NationalInsuranceNumber)
				}
			}
		}
		for _, a := range b.Accounts("") {
			unique("account", a.AccountID)
			unique("iban", a.IBAN)
			if !ibanValid(a.IBAN) || !patterns["iban"].MatchString(a.IBAN) || !patterns["acc"].MatchString(a.AccountID) {
				t.Errorf("seed %d: bad account %s %s", seed, a.AccountID, a.IBAN)
			}
			if a.IBAN[8:] != strings.ReplaceAll(a.SortCode, "-", "")+a.AccountNumber {
				t.Errorf("IBAN %s does not carry sort code %s and account %s", a.IBAN, a.SortCode, a.AccountNumber)
			}
		}
		for _, c := range b.Cards("") {
			unique("card", c.CardID)
			unique("pan", c.PAN)
			brandOK := c.Brand == "Visa" && patterns["visa"].MatchString(c.PAN) || c.Brand == "Mastercard" && patterns["mc"].MatchString(c.PAN)
			if !luhnValid(c.PAN) || !brandOK || !patterns["card"].MatchString(c.CardID) {
				t.Errorf("seed %d: bad card %+v", seed, c)
			}
		}
	}
	if !ibanValid("GB82WEST12345698765432") || ibanValid("GB83WEST12345698765432") || !luhnValid("4111111111111111") || luhnValid("4111111111111112") {
		t.Fatal("the test's own checks are wrong")
	}
	if !validIBAN("DE89370400440532013000") || validIBAN("DE88370400440532013000") || validIBAN("GB82 WEST 1234 5698 7654 32") {
		t.Fatal("validIBAN is wrong")
	}
}

func TestConcurrentUse(t *testing.T) {
	b := newTestBank()
	h := b.Handler()
	accts := b.Accounts("")
	const workers, each = 32, 25
	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := accts[w%len(accts)]
			for i := range each {
				body := fmt.Sprintf(`{"debtorAccountId":%q,"creditorIban":"GB82WEST12345698765432","creditorName":"Worker %d","amount":"%d.00","currency":%q}`,
					a.AccountID, w, i+1, a.Currency)
				rec := do(h, "POST", BasePath+"/payments", "application/json", body)
				if rec.Code != 201 {
					t.Errorf("payment: %d %s", rec.Code, rec.Body)
					return
				}
				var p Payment
				_ = json.Unmarshal(rec.Body.Bytes(), &p)
				mu.Lock()
				ids[p.PaymentID] = true
				mu.Unlock()
				do(h, "PATCH", BasePath+"/accounts/"+a.AccountID, "application/json", fmt.Sprintf(`{"nickname":"w%d-%d"}`, w, i))
				do(h, "GET", BasePath+"/accounts?limit=100", "", "")
				do(h, "POST", BasePath+"/login", "application/json", `{"username":"customer1","password":"password1"}`)
				do(h, "GET", BasePath+"/payments/"+p.PaymentID, "", "")
			}
		}()
	}
	wg.Wait()
	if len(ids) != workers*each {
		t.Fatalf("%d distinct payments, want %d", len(ids), workers*each)
	}
	for id := range ids {
		if rec := do(h, "GET", BasePath+"/payments/"+id, "", ""); rec.Code != 200 {
			t.Fatalf("payment %s: %d", id, rec.Code)
		}
	}
}

func TestSpecIsACopy(t *testing.T) {
	s := Spec()
	s[0] = 'X'
	if Spec()[0] == 'X' {
		t.Fatal("Spec returns shared memory")
	}
}
