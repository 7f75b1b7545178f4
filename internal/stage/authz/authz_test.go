package authz

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/policy"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

const (
	opGetAccount    = "GET /accounts/{accountId}"
	opUpdateAccount = "PUT /accounts/{accountId}"
	opBalances      = "GET /balances"
	opTransfer      = "POST /transfers"
	opPayment       = "POST /payments"
	opTenant        = "GET /tenants/{tenantId}/accounts"
	opAdmin         = "GET /admin/customers"
)

func loadSpec(t testing.TB) *spec.Document {
	t.Helper()
	doc, err := spec.Load(context.Background(), "testdata/bank.yaml")
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	return doc
}

func newEnv(t testing.TB) *policy.Env {
	t.Helper()
	env, err := policy.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func customer(sub, tenant string, accounts ...string) *identity.Identity {
	ids := make([]any, len(accounts))
	for i, a := range accounts {
		ids[i] = a
	}
	return &identity.Identity{
		Subject:  sub,
		Provider: "bank-idp",
		Kind:     identity.KindJWT,
		Claims:   map[string]any{"sub": sub, "account_ids": ids, "amr": []any{"pwd"}},
		Scopes:   []string{"accounts", "payments"},
		Roles:    []string{"customer"},
		Tenant:   tenant,
	}
}

var (
	custA = customer("cust-A", "tA", "A1", "A2")
	custB = customer("cust-B", "tB", "B1")
	admin = &identity.Identity{Subject: "ops-1", Provider: "bank-idp", Kind: identity.KindJWT,
		Claims: map[string]any{"sub": "ops-1"}, Scopes: []string{"admin"}, Roles: []string{"bank-admin"}, Tenant: "tA"}
	// noClaims is authenticated but carries no account_ids claim.
	noClaims = &identity.Identity{Subject: "svc", Kind: identity.KindAPIKey, Roles: []string{"customer"}, Tenant: "tA"}
)

// objects are the demo bank's object rules: ids in the path, the query, the
// body and a nested body.
var objects = []config.ObjectRule{
	{Operation: opGetAccount, Allow: `params.accountId in identity.claims.account_ids`, Owner: `response.body.customerId == identity.subject`},
	{Operation: opUpdateAccount, Allow: `params.accountId in identity.claims.account_ids`, ID: "params.accountId"},
	{Operation: opBalances, Allow: `request.query.accountId in identity.claims.account_ids`},
	{Operation: opTransfer, Allow: `request.body.accountId in identity.claims.account_ids`},
	{Operation: opPayment, Allow: `request.body.debtor.accountId in identity.claims.account_ids`},
}

func exchange(id *identity.Identity, op, method, target, body string, params ...pipeline.Param) *pipeline.Exchange {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	return &pipeline.Exchange{Request: r, API: "bank", Operation: op, Params: params, Identity: id}
}

func param(name, value string) pipeline.Param { return pipeline.Param{Name: name, Value: value} }

func newStage(t testing.TB, o Options) *Stage {
	t.Helper()
	if o.Env == nil {
		o.Env = newEnv(t)
	}
	if o.API == "" {
		o.API = "bank"
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

type want struct {
	action  pipeline.Action
	status  int
	reason  string
	rules   []string
	monitor bool
}

func check(t *testing.T, d pipeline.Decision, w want) {
	t.Helper()
	if d.Action != w.action || d.Status != w.status || d.Reason != w.reason || d.Monitor != w.monitor {
		t.Fatalf("decision = %v %d %q monitor=%v (%q), want %v %d %q monitor=%v",
			d.Action, d.Status, d.Reason, d.Monitor, d.Detail, w.action, w.status, w.reason, w.monitor)
	}
	if w.rules != nil && !slices.Equal(d.Rules, w.rules) {
		t.Fatalf("rules = %q, want %q", d.Rules, w.rules)
	}
	if d.Action == pipeline.Stop && d.Detail == "" {
		t.Fatal("a stop without detail")
	}
}

func allowed() want { return want{} }

func denied(reason string, rules ...string) want {
	return want{action: pipeline.Stop, status: http.StatusForbidden, reason: reason, rules: rules}
}

func TestObjectRules(t *testing.T) {
	doc := loadSpec(t)
	cases := []struct {
		name string
		x    func() *pipeline.Exchange
		want want
	}{
		{"path id, own", func() *pipeline.Exchange {
			return exchange(custA, opGetAccount, "GET", "/accounts/A1", "", param("accountId", "A1"))
		}, allowed()},
		{"path id, other's", func() *pipeline.Exchange {
			return exchange(custA, opGetAccount, "GET", "/accounts/B1", "", param("accountId", "B1"))
		}, denied("object_denied", opGetAccount)},
		{"update path id, other's", func() *pipeline.Exchange {
			return exchange(custA, opUpdateAccount, "PUT", "/accounts/B1", `{"nickname":"x"}`, param("accountId", "B1"))
		}, denied("object_denied", opUpdateAccount)},
		{"update path id, own", func() *pipeline.Exchange {
			return exchange(custA, opUpdateAccount, "PUT", "/accounts/A2", `{"nickname":"x"}`, param("accountId", "A2"))
		}, allowed()},
		{"query id, own", func() *pipeline.Exchange {
			return exchange(custA, opBalances, "GET", "/balances?accountId=A2", "")
		}, allowed()},
		{"query id, other's", func() *pipeline.Exchange {
			return exchange(custA, opBalances, "GET", "/balances?accountId=B1", "")
		}, denied("object_denied", opBalances)},
		{"query id, missing", func() *pipeline.Exchange {
			return exchange(custA, opBalances, "GET", "/balances", "")
		}, denied("object_rule_error", opBalances)},
		{"body id, own", func() *pipeline.Exchange {
			return exchange(custA, opTransfer, "POST", "/transfers", `{"accountId":"A1","amount":10}`)
		}, allowed()},
		{"body id, other's", func() *pipeline.Exchange {
			return exchange(custA, opTransfer, "POST", "/transfers", `{"accountId":"B1","amount":10}`)
		}, denied("object_denied", opTransfer)},
		{"nested body id, own", func() *pipeline.Exchange {
			return exchange(custA, opPayment, "POST", "/payments", `{"debtor":{"accountId":"A2"},"amount":5}`)
		}, allowed()},
		{"nested body id, other's", func() *pipeline.Exchange {
			return exchange(custA, opPayment, "POST", "/payments", `{"debtor":{"accountId":"B1"},"amount":5}`)
		}, denied("object_denied", opPayment)},
		{"body not JSON", func() *pipeline.Exchange {
			return exchange(custA, opPayment, "POST", "/payments", `debtor=B1`)
		}, denied("object_rule_error", opPayment)},
		{"B reads own", func() *pipeline.Exchange {
			return exchange(custB, opGetAccount, "GET", "/accounts/B1", "", param("accountId", "B1"))
		}, allowed()},
		{"anonymous", func() *pipeline.Exchange {
			return exchange(nil, opGetAccount, "GET", "/accounts/A1", "", param("accountId", "A1"))
		}, denied("object_rule_error", opGetAccount)},
		{"missing claim", func() *pipeline.Exchange {
			return exchange(noClaims, opGetAccount, "GET", "/accounts/A1", "", param("accountId", "A1"))
		}, denied("object_rule_error", opGetAccount)},
		{"operation without object rule", func() *pipeline.Exchange {
			return exchange(custA, opTenant, "GET", "/tenants/tB/accounts", "", param("tenantId", "tB"))
		}, allowed()},
	}
	for _, mode := range []string{"enforce", "monitor"} {
		s := newStage(t, Options{Spec: doc, Objects: objects, Authorize: &config.Authorize{Mode: mode}})
		for _, c := range cases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				w := c.want
				w.monitor = mode == "monitor" && w.action == pipeline.Stop
				d := s.Handle(context.Background(), c.x())
				check(t, d, w)
				if strings.Contains(d.Detail, "B1") || strings.Contains(d.Detail, "A1") {
					t.Fatalf("detail leaks an id: %q", d.Detail)
				}
			})
		}
	}
	// Without an authorize block the stage enforces.
	s := newStage(t, Options{Spec: doc, Objects: objects})
	d := s.Handle(context.Background(), exchange(custA, opGetAccount, "GET", "/accounts/B1", "", param("accountId", "B1")))
	check(t, d, denied("object_denied", opGetAccount))
	if d.Detail != "Denied by the object rule of GET /accounts/{accountId}." {
		t.Fatalf("detail = %q", d.Detail)
	}
}

func TestObjectIDsAreHashed(t *testing.T) {
	s := newStage(t, Options{Spec: loadSpec(t), Objects: objects})
	for _, c := range []struct {
		x    *pipeline.Exchange
		want []string
	}{
		{exchange(custA, opGetAccount, "GET", "/accounts/B1", "", param("accountId", "B1")), []string{policy.HashID("B1")}},
		{exchange(custA, opUpdateAccount, "PUT", "/accounts/A1", `{}`, param("accountId", "A1")), []string{policy.HashID("A1")}},
		{exchange(custA, opTransfer, "POST", "/transfers", `{"accountId":"A1"}`), nil},
	} {
		s.Handle(context.Background(), c.x)
		if !slices.Equal(c.x.ObjectIDs, c.want) {
			t.Fatalf("%s: ObjectIDs = %q, want %q", c.x.Operation, c.x.ObjectIDs, c.want)
		}
		for _, h := range c.x.ObjectIDs {
			if h == "B1" || h == "A1" || len(h) != 32 {
				t.Fatalf("raw or malformed id recorded: %q", h)
			}
		}
	}
}

func response(status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
}

func TestOwnerRule(t *testing.T) {
	doc := loadSpec(t)
	cases := []struct {
		name string
		id   *identity.Identity
		op   string
		resp func() *http.Response
		want want
	}{
		{"own", custA, opGetAccount, func() *http.Response { return response(200, `{"id":"A1","customerId":"cust-A"}`) }, allowed()},
		{"other's", custA, opGetAccount, func() *http.Response { return response(200, `{"id":"B1","customerId":"cust-B"}`) },
			denied("object_owner_mismatch", opGetAccount)},
		{"not JSON", custA, opGetAccount, func() *http.Response { return response(200, `<html>`) },
			denied("object_owner_error", opGetAccount)},
		{"anonymous", nil, opGetAccount, func() *http.Response { return response(200, `{"customerId":"cust-B"}`) },
			denied("object_owner_error", opGetAccount)},
		{"error status is not checked", custA, opGetAccount, func() *http.Response { return response(404, `{"customerId":"cust-B"}`) }, allowed()},
		{"too large", custA, opGetAccount, func() *http.Response {
			return response(200, `{"customerId":"cust-A","pad":"`+strings.Repeat("x", ResponseBodyLimit)+`"}`)
		}, denied("object_owner_unverified", opGetAccount)},
		{"operation without owner rule", custA, opTransfer, func() *http.Response { return response(200, `{"customerId":"cust-B"}`) }, allowed()},
	}
	for _, mode := range []string{"enforce", "monitor"} {
		s := newStage(t, Options{Spec: doc, Objects: objects, Authorize: &config.Authorize{Mode: mode}})
		if !s.HasResponseRules() {
			t.Fatal("HasResponseRules = false")
		}
		for _, c := range cases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				x := exchange(c.id, c.op, "GET", "/accounts/A1", "", param("accountId", "A1"))
				w := c.want
				w.monitor = mode == "monitor" && w.action == pipeline.Stop
				check(t, s.HandleResponse(context.Background(), x, c.resp()), w)
			})
		}
	}
	if newStage(t, Options{Spec: doc, Objects: objects[1:]}).HasResponseRules() {
		t.Fatal("HasResponseRules = true without owner rules")
	}
}

func TestFunctionLevel(t *testing.T) {
	doc := loadSpec(t)
	az := &config.Authorize{
		AdminRoles:      []string{"bank-admin"},
		AdminOperations: []string{opTenant},
		Access: []config.Access{
			{Operation: opPayment, Roles: []string{"customer", "teller"}, Scopes: []string{"payments"}},
			{Operation: opTransfer, Scopes: []string{"payments", "transfers"}},
		},
	}
	s := newStage(t, Options{Spec: doc, Authorize: az})
	for _, c := range []struct {
		name string
		id   *identity.Identity
		op   string
		want want
	}{
		{"customer on spec admin op", custA, opAdmin, denied("admin_operation", opAdmin)},
		{"admin on spec admin op", admin, opAdmin, allowed()},
		{"anonymous on admin op", nil, opAdmin, denied("admin_operation", opAdmin)},
		{"customer on config admin op", custA, opTenant, denied("admin_operation", opTenant)},
		{"admin on config admin op", admin, opTenant, allowed()},
		{"role and scope held", custA, opPayment, allowed()},
		{"role missing", admin, opPayment, denied("insufficient_role", opPayment)},
		{"one scope missing", custA, opTransfer, denied("insufficient_scope", opTransfer)},
		{"no requirement", custA, opGetAccount, allowed()},
	} {
		t.Run(c.name, func(t *testing.T) {
			check(t, s.Handle(context.Background(), exchange(c.id, c.op, "GET", "/", "")), c.want)
		})
	}
	// No admin roles: nobody may call an administrative operation.
	s = newStage(t, Options{Spec: doc})
	check(t, s.Handle(context.Background(), exchange(admin, opAdmin, "GET", "/admin/customers", "")), denied("admin_operation", opAdmin))
	check(t, s.Handle(context.Background(), exchange(custA, opGetAccount, "GET", "/accounts/A1", "")), allowed())
}

func TestTenantParam(t *testing.T) {
	s := newStage(t, Options{Spec: loadSpec(t), Authorize: &config.Authorize{TenantParam: "tenantId", Mode: "monitor"}})
	mon := func(w want) want { w.monitor = true; return w }
	for _, c := range []struct {
		name string
		x    *pipeline.Exchange
		want want
	}{
		{"path own", exchange(custA, opTenant, "GET", "/tenants/tA/accounts", "", param("tenantId", "tA")), allowed()},
		{"path other", exchange(custA, opTenant, "GET", "/tenants/tB/accounts", "", param("tenantId", "tB")), mon(denied("tenant_mismatch"))},
		{"query own", exchange(custA, opBalances, "GET", "/balances?tenantId=tA", ""), allowed()},
		{"query other", exchange(custA, opBalances, "GET", "/balances?tenantId=tB", ""), mon(denied("tenant_mismatch"))},
		{"query repeated", exchange(custA, opBalances, "GET", "/balances?tenantId=tA&tenantId=tB", ""), mon(denied("tenant_mismatch"))},
		{"path wins over query", exchange(custA, opTenant, "GET", "/tenants/tA/accounts?tenantId=tB", "", param("tenantId", "tA")), allowed()},
		{"no parameter", exchange(custA, opBalances, "GET", "/balances", ""), allowed()},
		{"anonymous", exchange(nil, opTenant, "GET", "/tenants/tA/accounts", "", param("tenantId", "tA")), mon(denied("tenant_mismatch"))},
		{"identity without tenant", exchange(&identity.Identity{Subject: "x"}, opTenant, "GET", "/tenants//accounts", "", param("tenantId", "")), mon(denied("tenant_mismatch"))},
	} {
		t.Run(c.name, func(t *testing.T) { check(t, s.Handle(context.Background(), c.x), c.want) })
	}
}

func TestBusinessRules(t *testing.T) {
	rules := []config.BusinessRule{
		{Name: "large-payment", Operation: opPayment, When: `double(request.body.amount) > 10000.0`, Action: "block"},
		{Name: "new-payee", Operation: opPayment, When: `has(request.body.newPayee) && request.body.newPayee`, Action: "flag"},
		{Name: "mfa-for-big", Operation: opPayment, When: `double(request.body.amount) > 1000.0 && !('mfa' in identity.claims.amr)`, Action: "step_up"},
		{Name: "night-watch", When: `'x-night' in request.headers && request.headers['x-night'] == 'yes'`, Action: "flag"},
	}
	s := newStage(t, Options{Spec: loadSpec(t), Rules: rules})
	for _, c := range []struct {
		name      string
		id        *identity.Identity
		op, body  string
		header    string
		want      want
		annotated []string // reasons:rule recorded on x
	}{
		{"small payment", custA, opPayment, `{"amount":10}`, "", allowed(), nil},
		{"blocked", custA, opPayment, `{"amount":20000}`, "", denied("rule_blocked", "large-payment"), nil},
		{"flagged and goes on", custA, opPayment, `{"amount":10,"newPayee":true}`, "", allowed(), []string{"rule_flagged:new-payee"}},
		{"flag error is recorded", custA, opPayment, `{"amount":10,"newPayee":"yes"}`, "", allowed(), []string{"rule_error:new-payee"}},
		{"step up", custA, opPayment, `{"amount":5000}`, "", want{action: pipeline.Stop, status: 401, reason: "step_up_required", rules: []string{"mfa-for-big"}}, nil},
		{"block error fails closed", custA, opPayment, `{"amount":"lots"}`, "", denied("rule_error", "large-payment"), nil},
		{"anonymous fails closed", nil, opPayment, `{"amount":5000}`, "", denied("rule_error", "mfa-for-big"), nil},
		{"rule for all operations", custA, opGetAccount, "", "yes", allowed(), []string{"rule_flagged:night-watch"}},
		{"other operation", custA, opTransfer, `{"amount":20000}`, "", allowed(), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := exchange(c.id, c.op, "POST", "/payments", c.body)
			if c.header != "" {
				x.Request.Header.Set("X-Night", c.header)
			}
			d := s.Handle(context.Background(), x)
			check(t, d, c.want)
			var got []string
			for _, r := range x.Decisions {
				if r.Action != pipeline.Annotate {
					t.Fatalf("recorded %v", r.Action)
				}
				got = append(got, r.Reason+":"+strings.Join(r.Rules, ","))
			}
			if !slices.Equal(got, c.annotated) {
				t.Fatalf("annotations = %q, want %q", got, c.annotated)
			}
			switch d.Reason {
			case "step_up_required":
				if h := d.Headers.Get("WWW-Authenticate"); h != `Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required"` {
					t.Fatalf("WWW-Authenticate = %q", h)
				}
			case "rule_blocked":
				if d.Detail != "Denied by rule large-payment." {
					t.Fatalf("detail = %q", d.Detail)
				}
			}
		})
	}
}

func TestOrder(t *testing.T) {
	// Function level comes before object rules, object rules before business rules.
	s := newStage(t, Options{
		Spec:      loadSpec(t),
		Objects:   objects,
		Rules:     []config.BusinessRule{{Name: "always", When: `true`, Action: "block"}},
		Authorize: &config.Authorize{Access: []config.Access{{Operation: opPayment, Roles: []string{"teller"}}}},
	})
	check(t, s.Handle(context.Background(), exchange(custA, opPayment, "POST", "/payments", `{"debtor":{"accountId":"B1"}}`)), denied("insufficient_role", opPayment))
	check(t, s.Handle(context.Background(), exchange(custA, opTransfer, "POST", "/transfers", `{"accountId":"B1"}`)), denied("object_denied", opTransfer))
	check(t, s.Handle(context.Background(), exchange(custA, opTransfer, "POST", "/transfers", `{"accountId":"A1"}`)), denied("rule_blocked", "always"))
}

func TestCompileErrors(t *testing.T) {
	doc := loadSpec(t)
	env := newEnv(t)
	_, err := New(Options{
		API:  "bank",
		Spec: doc,
		Env:  env,
		Objects: []config.ObjectRule{
			{Operation: opGetAccount, Allow: `params.accountId in identity.claims.account_ids`},
			{Operation: opGetAccount, Allow: `params.accountId in (`},
			{Operation: opTransfer, Allow: `request.body.amount + 1`, Owner: `size(response.body) == 'x'`},
			{Operation: "GET /nowhere", Allow: `true`},
			{Operation: opUpdateAccount, Allow: `true`, ID: "request.body.id"},
		},
		Rules: []config.BusinessRule{
			{Name: "ok", When: `true`, Action: "flag"},
			{Name: "bad", When: `operation == 1`, Action: "block"},
			{Name: "syntax", When: `&&`, Action: "block"},
		},
	})
	if err == nil {
		t.Fatal("New accepted bad expressions")
	}
	want := map[string]string{
		"objects[1].allow":     "Syntax error",
		"objects[2].allow":     "want bool",
		"objects[2].owner":     "no matching overload",
		"objects[3].operation": "no operation",
		"objects[4].id":        "only params.<name> is supported",
		"rules[1].when":        "no matching overload",
		"rules[2].when":        "Syntax error",
	}
	got := map[string]string{}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("not a *FieldError: %T %v", e, e)
		}
		got[fe.Path] = fe.Error()
	}
	for path, text := range want {
		msg, ok := got[path]
		if !ok {
			t.Errorf("no error for %s; got %v", path, got)
			continue
		}
		if !strings.Contains(msg, text) || !strings.HasPrefix(msg, path+": ") {
			t.Errorf("%s: %q does not contain %q", path, msg, text)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d: %v", len(got), len(want), got)
	}
	// The CEL compile error carries its position.
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "objects[1].allow" {
		t.Fatalf("first error = %v", err)
	}
	var ce *policy.CompileError
	if !errors.As(fe, &ce) || ce.Line != 1 || ce.Column == 0 {
		t.Fatalf("compile error position: %+v", ce)
	}

	// Without a spec, an unknown operation is not an error.
	if _, err := New(Options{Env: env, Objects: []config.ObjectRule{{Operation: "GET /nowhere", Allow: "true"}}}); err != nil {
		t.Fatal(err)
	}
}

func TestName(t *testing.T) {
	if n := newStage(t, Options{}).Name(); n != "authorize" {
		t.Fatal(n)
	}
}

func body1KiB() string {
	head := `{"debtor":{"accountId":"A1"},"amount":250,"newPayee":false,"remittance":"`
	tail := `"}`
	return head + strings.Repeat("x", 1024-len(head)-len(tail)) + tail
}

func BenchmarkHandle(b *testing.B) {
	s := newStage(b, Options{
		Spec: loadSpec(b),
		Objects: []config.ObjectRule{
			{Operation: opGetAccount, Allow: `params.accountId in identity.claims.account_ids`},
			{Operation: opTransfer, Allow: `request.body.accountId in identity.claims.account_ids`},
			{Operation: opPayment, Allow: `request.body.debtor.accountId in identity.claims.account_ids`},
		},
		Rules: []config.BusinessRule{
			{Name: "large-payment", Operation: opPayment, When: `double(request.body.amount) > 10000.0`, Action: "block"},
			{Name: "new-payee", When: `request.body.newPayee == true`, Action: "flag"},
		},
	})
	body := body1KiB()
	if len(body) != 1024 {
		b.Fatalf("body is %d bytes", len(body))
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		x := exchange(custA, opPayment, "POST", "/payments", body)
		if d := s.Handle(ctx, x); d.Action != pipeline.Allow {
			b.Fatalf("decision %v %q", d.Action, d.Reason)
		}
	}
}

// BenchmarkExchange is the cost of building the benchmark's exchange alone,
// to subtract from BenchmarkHandle.
func BenchmarkExchange(b *testing.B) {
	body := body1KiB()
	b.ReportAllocs()
	for b.Loop() {
		_ = exchange(custA, opPayment, "POST", "/payments", body)
	}
}
