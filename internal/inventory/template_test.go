package inventory

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/spec"
)

func TestTemplateSingleSample(t *testing.T) {
	tests := []struct {
		path   string
		want   string
		params []string
	}{
		{"/customers/42", "/customers/{customerId}", []string{"customerId"}},
		{"/customers/current", "/customers/current", nil},
		{"/v1/customers/cus_NffrFeUfNV2Hib", "/v1/customers/{customerId}", []string{"customerId"}},
		{"/v1/", "/v1/", nil},
		{"/open-banking/v4.0/aisp/accounts/acc_8f3a29c1", "/open-banking/v4.0/aisp/accounts/{accountId}", []string{"accountId"}},
		{"/users/jane.doe@example.com/orders/2026-01-28", "/users/{userId}/orders/{orderId}", []string{"userId", "orderId"}},
		{"/ledgers/3f6c1a2e-9b4d-4c8e-a1f2-7d5e6b8c9a01/entries/txn-000123", "/ledgers/{ledgerId}/entries/{entryId}", []string{"ledgerId", "entryId"}},
		{"/a/1/a/2", "/a/{aId}/a/{aId2}", []string{"aId", "aId2"}},
		{"/v1/42/43", "/v1/{id}/{id2}", []string{"id", "id2"}},
		{"/ibans/GB82WEST12345698765432", "/ibans/{ibanId}", []string{"ibanId"}},
		{"/a/5/{aId}", "/a/{aId2}/{aId}", []string{"aId2", "aId"}},
		{"/", "/", nil},
		{"", "", nil},
		{"//x//", "//x//", nil},
		{"/files/8f3a29c1d7e40b5a/contents", "/files/{fileId}/contents", []string{"fileId"}},
	}
	for _, tt := range tests {
		tp := NewTemplater(TemplaterOptions{})
		tp.Observe("GET", tt.path)
		got, params := tp.Template(tt.path)
		if got != tt.want || !reflect.DeepEqual(params, tt.params) {
			t.Errorf("Template(%q) = %q %q, want %q %q", tt.path, got, params, tt.want, tt.params)
		}
	}
}

func TestTemplateCurrentBesideID(t *testing.T) {
	tp := NewTemplater(TemplaterOptions{})
	for i := range 50 {
		tp.Observe("GET", fmt.Sprintf("/customers/%d", 1000+i))
		tp.Observe("GET", fmt.Sprintf("/customers/cus_%08dab", i))
	}
	for range 20 {
		tp.Observe("GET", "/customers/current")
		tp.Observe("GET", "/customers/search")
	}
	for path, want := range map[string]string{
		"/customers/current": "/customers/current",
		"/customers/search":  "/customers/search",
		"/customers/77":      "/customers/{customerId}",
		"/customers/me":      "/customers/me",
	} {
		if got, _ := tp.Template(path); got != want {
			t.Errorf("Template(%q) = %q, want %q", path, got, want)
		}
	}
}

// TestTemplateWordValues: word-like values (usernames) become a parameter
// once many distinct, rarely repeated ones appear at one position, while a
// fixed set of resource names hit repeatedly stays literal.
func TestTemplateWordValues(t *testing.T) {
	var names []string // 60 word-like usernames, most seen once
	for _, a := range []string{"al", "bo", "ca", "da", "er", "fr"} {
		for _, b := range []string{"ice", "ob", "rol", "ve", "in", "ank", "ace", "idi", "an", "udy"} {
			names = append(names, a+b)
		}
	}
	tp := NewTemplater(TemplaterOptions{})
	resources := []string{"balances", "beneficiaries", "direct-debits", "offers", "party", "products",
		"scheduled-payments", "standing-orders", "statements", "transactions", "parties", "product"}
	for round := range 5 {
		for _, r := range resources {
			tp.Observe("GET", "/api/"+r)
		}
		_ = round
	}
	tp.Observe("GET", "/users/groups/42") // a collection beside values stays literal
	for _, n := range names {
		tp.Observe("GET", "/users/"+n+"/repos")
	}
	for path, want := range map[string]string{
		"/api/balances":       "/api/balances",
		"/api/direct-debits":  "/api/direct-debits",
		"/users/alice/repos":  "/users/{userId}/repos",
		"/users/newbie/repos": "/users/{userId}/repos",
		"/users/groups/7":     "/users/groups/{groupId}",
	} {
		if got, _ := tp.Template(path); got != want {
			t.Errorf("Template(%q) = %q, want %q", path, got, want)
		}
	}
	// Fewer than MinDistinct word values: still literal.
	tp2 := NewTemplater(TemplaterOptions{})
	for _, n := range names[:5] {
		tp2.Observe("GET", "/users/"+n)
	}
	if got, _ := tp2.Template("/users/alice"); got != "/users/alice" {
		t.Errorf("5 values: Template = %q, want literal", got)
	}
}

func TestTemplateHardCap(t *testing.T) {
	tp := NewTemplater(TemplaterOptions{MaxChildren: 16})
	for i := range 200 {
		for range 3 { // repeated: the statistical rule does not fire
			tp.Observe("GET", fmt.Sprintf("/tags/tag-%c%c/items", 'a'+i%26, 'a'+i/26))
		}
	}
	if got, _ := tp.Template("/tags/tag-zz/items"); got != "/tags/{tagId}/items" {
		t.Errorf("after cap: Template = %q", got)
	}
	tp.mu.RLock()
	n := len(tp.root.lit[""].lit["tags"].lit)
	tp.mu.RUnlock()
	if n > 16 {
		t.Errorf("node holds %d literal children, cap 16", n)
	}
}

func TestTemplateNodeBudget(t *testing.T) {
	tp := NewTemplater(TemplaterOptions{MaxNodes: 200})
	for i := range 5000 {
		tp.Observe("GET", fmt.Sprintf("/x%c%c/y%c/z", 'a'+i%26, 'a'+(i/26)%26, 'a'+(i/676)%26))
	}
	tp.mu.RLock()
	nodes := tp.nodes
	tp.mu.RUnlock()
	if nodes > 200 {
		t.Errorf("%d nodes, budget 200", nodes)
	}
}

func TestTemplateHints(t *testing.T) {
	tp := NewTemplater(TemplaterOptions{Hints: []string{"/customers/{id}", "/customers/current", "/files/{name}.json", "bad", "/x/{"}})
	tests := []struct{ path, want string }{
		{"/customers/alice", "/customers/{id}"},
		{"/customers/current", "/customers/current"},
		{"/customers/42", "/customers/{id}"},
		{"/files/report.json", "/files/{name}.json"},
		{"/files/42", "/files/{fileId}"},
		{"/customers/", "/customers/"}, // segment count is kept
	}
	for _, tt := range tests {
		if got, _ := tp.Template(tt.path); got != tt.want {
			t.Errorf("Template(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
	if err := CheckTemplate("/x/{"); err == nil {
		t.Error("CheckTemplate accepted an unbalanced brace")
	}
	if err := CheckTemplate("x"); err == nil {
		t.Error("CheckTemplate accepted a relative template")
	}
}

const tinySpec = `openapi: 3.0.3
info: {title: tiny, version: "1"}
servers: [{url: /api/v1}]
paths:
  /customers/{CustomerId}:
    get:
      parameters: [{name: CustomerId, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
  /customers/current:
    get:
      responses: {"200": {description: ok}}
`

func TestTemplateSpec(t *testing.T) {
	doc, err := spec.LoadData(context.Background(), []byte(tinySpec), "")
	if err != nil {
		t.Fatal(err)
	}
	tp := NewTemplater(TemplaterOptions{Hints: []string{"/api/v1/customers/{hinted}"}})
	tp.AddSpec(doc)
	tests := []struct {
		path   string
		want   string
		params []string
	}{
		{"/api/v1/customers/alice", "/api/v1/customers/{CustomerId}", []string{"CustomerId"}},
		{"/api/v1/customers/current", "/api/v1/customers/current", nil},
		{"/api/v1/customers/{CustomerId}", "/api/v1/customers/{CustomerId}", []string{"CustomerId"}},
		{"/api/v1/orders/42", "/api/v1/orders/{orderId}", []string{"orderId"}},
	}
	for _, tt := range tests {
		got, params := tp.Template(tt.path)
		if got != tt.want || !reflect.DeepEqual(params, tt.params) {
			t.Errorf("Template(%q) = %q %q, want %q %q", tt.path, got, params, tt.want, tt.params)
		}
	}
}

// TestTemplateConcurrent runs Observe and Template together (run with
// -race).
func TestTemplateConcurrent(t *testing.T) {
	tp := NewTemplater(TemplaterOptions{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				tp.Observe("GET", fmt.Sprintf("/w%c/users/user-%c%c/items/%d", 'a'+w, 'a'+i%26, 'a'+i/26%26, i))
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 2000 {
				_, _ = tp.Template(fmt.Sprintf("/w%c/users/user-%c%c/items/%d", 'a'+w, 'a'+i%26, 'a'+i/26%26, i))
			}
		}()
	}
	wg.Wait()
	if got, _ := tp.Template("/wa/users/user-zz/items/1"); got != "/wa/users/{userId}/items/{itemId}" {
		t.Errorf("Template = %q", got)
	}
}
