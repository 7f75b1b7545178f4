package policy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

func testEnv(t testing.TB) *Env {
	t.Helper()
	env, err := NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// customerA is a customer who owns acc-1 and acc-2.
func customerA() *identity.Identity {
	return &identity.Identity{
		Subject:  "cust-A",
		Provider: "bank-idp",
		Kind:     identity.KindJWT,
		Claims: map[string]any{
			"sub":         "cust-A",
			"account_ids": []any{"acc-1", "acc-2"},
			"amr":         []any{"pwd"},
			"exp":         float64(1900000000),
		},
		Scopes:   []string{"accounts", "payments"},
		Roles:    []string{"customer"},
		Tenant:   "tenant-A",
		ClientID: "mobile-app",
	}
}

func exchange(method, target, body string, id *identity.Identity, params ...pipeline.Param) *pipeline.Exchange {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Add("X-Fapi-Interaction-Id", "abc")
	r.Header.Add("X-Multi", "one")
	r.Header.Add("X-Multi", "two")
	return &pipeline.Exchange{
		Request:  r,
		Client:   netip.MustParseAddrPort("192.0.2.7:51000"),
		API:      "openbanking",
		Identity: id,
		Params:   params,
	}
}

func eval(t *testing.T, env *Env, expr string, side Side, in Input) (bool, error) {
	t.Helper()
	p, err := env.Compile(expr, side)
	if err != nil {
		t.Fatalf("compile %q: %v", expr, err)
	}
	a, err := NewActivation(in)
	if err != nil {
		t.Fatalf("activation: %v", err)
	}
	return p.Eval(context.Background(), a)
}

func TestEval(t *testing.T) {
	env := testEnv(t)
	getAcc := func(id string) *pipeline.Exchange {
		x := exchange("GET", "/accounts/"+id, "", customerA(), pipeline.Param{Name: "AccountId", Value: id})
		x.Operation = "GET /accounts/{AccountId}"
		return x
	}
	pay := func(body string) *pipeline.Exchange {
		x := exchange("POST", "/domestic-payments", body, customerA())
		x.Operation = "POST /domestic-payments"
		return x
	}
	query := func(q string) *pipeline.Exchange {
		return exchange("GET", "/customers?"+q, "", customerA())
	}
	resp := func(x *pipeline.Exchange, body string) Input {
		return Input{Exchange: x, Response: &ResponseInput{
			Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body),
		}}
	}
	nested := func(id string) string {
		return `{"Data":{"Initiation":{"DebtorAccount":{"SchemeName":"IBAN","Identification":"` + id + `"}}}}`
	}
	const bigPay = `operation == 'POST /domestic-payments' && double(request.body.Amount) > 10000.0 && !('mfa' in identity.claims.amr)`
	tests := []struct {
		name string
		expr string
		side Side
		in   Input
		want bool
	}{
		{"path id own", `params.AccountId in identity.claims.account_ids`, Request, Input{Exchange: getAcc("acc-1")}, true},
		{"path id other", `params.AccountId in identity.claims.account_ids`, Request, Input{Exchange: getAcc("acc-9")}, false},
		{"body id own", `request.body.debtorAccountId in identity.claims.account_ids`, Request, Input{Exchange: pay(`{"debtorAccountId":"acc-2"}`)}, true},
		{"body id other", `request.body.debtorAccountId in identity.claims.account_ids`, Request, Input{Exchange: pay(`{"debtorAccountId":"acc-9"}`)}, false},
		{"nested body id own", `request.body.Data.Initiation.DebtorAccount.Identification in identity.claims.account_ids`, Request, Input{Exchange: pay(nested("acc-1"))}, true},
		{"nested body id other", `request.body.Data.Initiation.DebtorAccount.Identification in identity.claims.account_ids`, Request, Input{Exchange: pay(nested("acc-9"))}, false},
		{"step-up large int amount", bigPay, Request, Input{Exchange: pay(`{"Amount":20000}`)}, true},
		{"step-up large float amount", bigPay, Request, Input{Exchange: pay(`{"Amount":10000.5}`)}, true},
		{"step-up small amount", bigPay, Request, Input{Exchange: pay(`{"Amount":50}`)}, false},
		{"int compares with double", `request.body.Amount > 10000.0 && request.body.Amount == 20000`, Request, Input{Exchange: pay(`{"Amount":2e4}`)}, true},
		{"owner on response", `response.body.customerId == identity.subject`, Response, resp(getAcc("acc-1"), `{"customerId":"cust-A"}`), true},
		{"owner on response other", `response.body.customerId == identity.subject`, Response, resp(getAcc("acc-1"), `{"customerId":"cust-B"}`), false},
		{"response status and header", `response.status == 200 && response.headers['content-type'] == 'application/json'`, Response, resp(getAcc("acc-1"), `{}`), true},
		{"query id own", `request.query.customerId == identity.tenant`, Request, Input{Exchange: query("customerId=tenant-A")}, true},
		{"query id other", `request.query.customerId == identity.tenant`, Request, Input{Exchange: query("customerId=tenant-B")}, false},
		{"query first value", `request.query.customerId == 'tenant-A'`, Request, Input{Exchange: query("customerId=tenant-A&customerId=tenant-B")}, true},
		{"query all values", `request.query_all.customerId == ['tenant-A', 'tenant-B'] && !request.query_all.customerId.all(c, c == identity.tenant)`, Request, Input{Exchange: query("customerId=tenant-A&customerId=tenant-B")}, true},
		{"query absent", `!('customerId' in request.query) && size(request.query_all) == 0`, Request, Input{Exchange: query("")}, true},
		{"role", `'admin' in identity.roles`, Request, Input{Exchange: getAcc("acc-1")}, false},
		{"role customer", `'customer' in identity.roles && 'payments' in identity.scopes`, Request, Input{Exchange: getAcc("acc-1")}, true},
		{"header lower-case", `request.headers['x-fapi-interaction-id'] == 'abc'`, Request, Input{Exchange: getAcc("acc-1")}, true},
		{"header joined", `request.headers['x-multi'] == 'one, two'`, Request, Input{Exchange: getAcc("acc-1")}, true},
		{"header absent via in", `!('authorization' in request.headers)`, Request, Input{Exchange: getAcc("acc-1")}, true},
		{"method path client api", `request.method == 'GET' && request.path == '/accounts/acc-1' && request.client == '192.0.2.7' && api == 'openbanking'`, Request, Input{Exchange: getAcc("acc-1")}, true},
		{"identity fields", `identity.subject == 'cust-A' && identity.provider == 'bank-idp' && identity.kind == 'jwt' && identity.client_id == 'mobile-app' && identity.claims.exp > 0`, Request, Input{Exchange: getAcc("acc-1")}, true},
		{"no body is null", `request.body == null`, Request, Input{Exchange: getAcc("acc-1")}, true},
		{"non-JSON body is null", `request.body == null`, Request, Input{Exchange: pay(`amount=5`)}, true},
		{"trailing data is null", `request.body == null`, Request, Input{Exchange: pay(`{"a":1} {"b":2}`)}, true},
		{"optional field", `request.body.?missing.orValue('x') == 'x'`, Request, Input{Exchange: pay(`{"a":1}`)}, true},
		{"has on body", `has(request.body.a) && !has(request.body.b)`, Request, Input{Exchange: pay(`{"a":1}`)}, true},
		{"anonymous explicit", `identity == null`, Request, Input{Exchange: exchange("GET", "/x", "", nil)}, true},
		{"anonymous guarded", `identity != null && 'admin' in identity.roles`, Request, Input{Exchange: exchange("GET", "/x", "", nil)}, false},
		{"string extension", `identity.subject.lowerAscii() == 'cust-a'`, Request, Input{Exchange: getAcc("acc-1")}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := eval(t, env, tc.expr, tc.side, tc.in)
			if err != nil {
				t.Fatalf("eval %q: %v", tc.expr, err)
			}
			if got != tc.want {
				t.Errorf("eval %q = %v, want %v", tc.expr, got, tc.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	env := testEnv(t)
	tests := []struct {
		name string
		expr string
		side Side
		want []string // substrings of the error
	}{
		{"syntax", "params.AccountId in", Request, []string{"Syntax error", "1:"}},
		{"syntax second line", "params.AccountId == 'a' &&\n  (identity.subject ==", Request, []string{"Syntax error", "2:"}},
		{"type error", "params.AccountId + 1 > 2", Request, []string{"found no matching overload", "1:18"}},
		{"non-bool result", "params.AccountId", Request, []string{"want bool"}},
		{"dyn result", "request.body.admin", Request, []string{"want bool"}},
		{"response on request side", "response.status == 200", Request, []string{"undeclared reference to 'response'", "1:1"}},
		{"unknown variable", "user.id == 'a'", Request, []string{"undeclared reference to 'user'"}},
		{"too long", strings.Repeat("a", MaxExpressionBytes+1), Request, []string{"more than the limit"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.Compile(tc.expr, tc.side)
			if err == nil {
				t.Fatalf("compile %q: no error", tc.expr)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("compile %q: error %q does not contain %q", tc.expr, err, w)
				}
			}
		})
	}
	var ce *CompileError
	_, err := env.Compile("params.AccountId == 'a' &&\n  params.AccountId + 1 > 2", Request)
	if !errors.As(err, &ce) || ce.Line != 2 || ce.Column != 20 || ce.Side != Request {
		t.Errorf("CompileError = %#v from %v, want line 2 column 20", ce, err)
	}
	if _, err := env.Compile("response.status == 200", Response); err != nil {
		t.Errorf("response on response side: %v", err)
	}
}

func TestRuntimeErrors(t *testing.T) {
	env := testEnv(t)
	withBody := func(body string, id *identity.Identity) Input {
		return Input{Exchange: exchange("POST", "/p", body, id)}
	}
	tests := []struct {
		name string
		expr string
		in   Input
		want string
	}{
		{"missing body key", `request.body.debtorAccountId in identity.claims.account_ids`, withBody(`{"other":1}`, customerA()), "no such key"},
		{"missing param", `params.AccountId == 'a'`, withBody(``, customerA()), "no such key"},
		{"missing claim", `params.size() == 0 && identity.claims.missing == 'x'`, withBody(``, customerA()), "no such key"},
		{"null body", `request.body.a == 1`, withBody(``, customerA()), ""},
		{"anonymous field", `'admin' in identity.roles`, withBody(``, nil), ""},
		{"anonymous subject", `identity.subject == 'x'`, withBody(``, nil), ""},
		{"runtime type error", `double(request.body.Amount) > 1.0`, withBody(`{"Amount":"lots"}`, customerA()), ""},
		{"missing header", `request.headers['authorization'] == 'x'`, withBody(``, customerA()), "no such key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := eval(t, env, tc.expr, Request, tc.in)
			if err == nil {
				t.Fatalf("eval %q = %v, want an error", tc.expr, got)
			}
			if got {
				t.Errorf("eval %q returned true with an error", tc.expr)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("eval %q: error %q does not contain %q", tc.expr, err, tc.want)
			}
		})
	}

	// A response-side program given a request-side activation.
	p, err := env.Compile(`response.status == 200`, Response)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewActivation(withBody(``, customerA()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Eval(context.Background(), a); !errors.Is(err, ErrSide) {
		t.Errorf("response program on request activation: err = %v, want ErrSide", err)
	}
	if _, err := p.Eval(context.Background(), Activation{}); err == nil {
		t.Error("zero Activation: no error")
	}
	if _, err := NewActivation(Input{}); err == nil {
		t.Error("NewActivation without exchange: no error")
	}
}

func TestCostLimit(t *testing.T) {
	env := testEnv(t)
	const digits = `[0,1,2,3,4,5,6,7,8,9]`
	expr := digits + `.all(a, ` + digits + `.all(b, ` + digits + `.all(c, ` + digits + `.all(d, a + b + c + d >= 0))))`
	_, err := eval(t, env, expr, Request, Input{Exchange: exchange("GET", "/x", "", customerA())})
	if err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
		t.Fatalf("nested comprehension: err = %v, want cost limit exceeded", err)
	}

	// A comprehension over a large body list.
	body := "[" + strings.Repeat("0,", 50000) + "0]"
	_, err = eval(t, env, `request.body.all(x, x == 0)`, Request, Input{Exchange: exchange("POST", "/x", body, customerA())})
	if err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
		t.Fatalf("comprehension over body: err = %v, want cost limit exceeded", err)
	}

	// A small one is within the limit.
	ok, err := eval(t, env, `request.body.all(x, x == 0)`, Request, Input{Exchange: exchange("POST", "/x", "[0,0,0]", customerA())})
	if err != nil || !ok {
		t.Fatalf("small comprehension = %v, %v", ok, err)
	}
}

func TestContextCancelled(t *testing.T) {
	env := testEnv(t)
	p, err := env.Compile(`request.body.all(x, x == 0)`, Request)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewActivation(Input{Exchange: exchange("POST", "/x", "["+strings.Repeat("0,", 500)+"0]", customerA())})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Eval(ctx, a); err == nil {
		t.Error("cancelled context: no error")
	}
}

func TestLazyBody(t *testing.T) {
	env := testEnv(t)
	x := exchange("POST", "/x", `{"a":1}`, customerA())
	a, err := NewActivation(Input{Exchange: x})
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.Compile(`request.method == 'POST'`, Request)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Eval(context.Background(), a); err != nil || !ok {
		t.Fatalf("eval = %v, %v", ok, err)
	}
	if _, ok := a.a.request.(*lazyMap).vals["body"]; ok {
		t.Error("body decoded by an expression that does not read it")
	}
	// The whole map, compared or iterated, is still complete.
	p, err = env.Compile(`request.size() == 7 && 'body' in request && request.exists(k, k == 'body')`, Request)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Eval(context.Background(), a); err != nil || !ok {
		t.Fatalf("eval = %v, %v", ok, err)
	}
}

func TestBodyLimitAndNumbers(t *testing.T) {
	big := `{"a":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	if _, ok := decodeJSON([]byte(big)); ok {
		t.Error("body over MaxBodyBytes decoded")
	}
	v, ok := decodeJSON([]byte(`{"i":12,"f":1.5,"e":1e3,"huge":123456789012345678901234567890,"neg":-9223372036854775808}`))
	if !ok {
		t.Fatal("decode failed")
	}
	m := v.(map[string]any)
	for k, want := range map[string]any{"i": int64(12), "f": 1.5, "e": int64(1000), "huge": 1.2345678901234568e29, "neg": int64(-9223372036854775808)} {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	if _, ok := decodeJSON([]byte(`{"x":1e999}`)); ok {
		t.Error("out-of-range number decoded")
	}
}

func TestHashID(t *testing.T) {
	h := HashID("acc-1")
	if len(h) != 32 || h == HashID("acc-2") || h != HashID("acc-1") {
		t.Errorf("HashID = %q", h)
	}
	// SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223...
	if got := HashID("abc"); got != "ba7816bf8f01cfea414140de5dae2223" {
		t.Errorf("HashID(abc) = %s", got)
	}
}

func TestConcurrentPrograms(t *testing.T) {
	env := testEnv(t)
	p, err := env.Compile(`request.body.debtorAccountId in identity.claims.account_ids`, Request)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				id := "acc-1"
				if i%2 == 1 {
					id = "acc-9"
				}
				a, err := NewActivation(Input{Exchange: exchange("POST", "/p", `{"debtorAccountId":"`+id+`"}`, customerA())})
				if err != nil {
					t.Error(err)
					return
				}
				ok, err := p.Eval(context.Background(), a)
				if err != nil || ok != (i%2 == 0) {
					t.Errorf("eval = %v, %v", ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
