package dashboard

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwarkapi/bulwark/internal/admin"
	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/inventory"
)

// signedInPages are the pages of a signed-in session, with the status
// each answers for the populated fixture.
var signedInPages = []string{
	"/ui/", "/ui/inventory", "/ui/inventory?status=shadow&sensitive=true&sort=last_seen",
	"/ui/findings", "/ui/findings?kind=bola_enumeration&severity=high",
	"/ui/finding/bola_enumeration-0123456789abcdef", "/ui/config", "/ui/no-such-page",
	"/ui/endpoint/no-such-endpoint", "/ui/finding/no-such-finding",
}

// fixtures returns the dashboards every page test runs against.
func fixtures(t *testing.T) map[string]Options {
	empty, err := inventory.New(inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Options{
		"populated":          populated(t),
		"nothing configured": {},
		"empty inventory": {
			Inventory: func() *inventory.Inventory { return empty },
			Findings:  findingsFunc(nil),
			Config:    func() *config.Config { return &config.Config{} },
			Timeline:  NewTimeline(0, 0),
		},
		"failing store": {
			Inventory: func() *inventory.Inventory { return nil },
			Findings:  failingFindings,
		},
	}
}

// allPages returns every page and asset a signed-in browser can load,
// endpoint pages of the inventory included.
func allPages(f *fixture) []string {
	pages := append([]string{}, signedInPages...)
	if inv := f.d.inventory(); inv != nil {
		for _, ep := range inv.Endpoints() {
			pages = append(pages, "/ui/endpoint/"+ep.ID)
		}
	}
	return pages
}

var (
	scriptTag   = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`)
	styleAttr   = regexp.MustCompile(`(?i)<[^>]*\sstyle\s*=`)
	styleTag    = regexp.MustCompile(`(?i)<style\b`)
	handlerAttr = regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`)
	wholeAction = regexp.MustCompile(`="\{\{[^}]*\}\}`)
	urlAttr     = regexp.MustCompile(`(?i)\s(src|href|action|formaction|xlink:href|poster|srcset|data)\s*=\s*("([^"]*)"|'([^']*)'|([^\s>]+))`)
)

// checkHTML fails on inline script or style, inline event handlers and
// links leaving the dashboard.
func checkHTML(t *testing.T, page, body string) {
	t.Helper()
	for _, m := range scriptTag.FindAllStringSubmatch(body, -1) {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("%s: inline script: %.80s", page, m[0])
		}
	}
	if loc := styleAttr.FindStringIndex(body); loc != nil {
		t.Errorf("%s: style attribute: %.80s", page, body[loc[0]:])
	}
	if styleTag.MatchString(body) {
		t.Errorf("%s: <style> element", page)
	}
	if loc := handlerAttr.FindStringIndex(body); loc != nil {
		t.Errorf("%s: inline event handler: %.80s", page, body[loc[0]:])
	}
	for _, m := range urlAttr.FindAllStringSubmatch(body, -1) {
		v := m[3] + m[4] + m[5]
		if !localURL(v) {
			t.Errorf("%s: %s=%q leaves the dashboard", page, m[1], v)
		}
	}
}

// localURL accepts only links within the dashboard: /ui/... paths,
// queries and fragments of the page itself.
func localURL(v string) bool {
	v = strings.TrimSpace(v)
	switch {
	case strings.HasPrefix(v, "//"), strings.Contains(v, "://"), strings.Contains(strings.ToLower(v), "javascript:"):
		return false
	case strings.HasPrefix(v, "/ui/"), strings.HasPrefix(v, "?"), strings.HasPrefix(v, "#"):
		return true
	}
	return false
}

func TestPagesSecurity(t *testing.T) {
	for name, o := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, o)
			anon := f.client()
			c, _ := f.signIn()
			check := func(c *http.Client, page string, wantNoStore bool) string {
				resp, body := f.get(c, page)
				h := resp.Header
				if got := h.Get("Content-Security-Policy"); got != CSP {
					t.Errorf("%s: CSP %q", page, got)
				}
				if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" {
					t.Errorf("%s: security headers %v", page, h)
				}
				if wantNoStore && h.Get("Cache-Control") != "no-store" {
					t.Errorf("%s: Cache-Control %q", page, h.Get("Cache-Control"))
				}
				if resp.StatusCode >= 500 && name != "failing store" {
					t.Errorf("%s: status %d", page, resp.StatusCode)
				}
				return body
			}
			for _, p := range allPages(f) {
				body := check(c, p, true)
				checkHTML(t, p, body)
				if !strings.Contains(body, "</html>") {
					t.Errorf("%s: incomplete page", p)
				}
			}
			// Signed out: redirects, the sign-in page, errors.
			for _, p := range []string{"/ui/", "/ui/login", "/ui/inventory"} {
				checkHTML(t, p, check(anon, p, true))
			}
			resp, _ := f.post(anon, "/ui/login", url.Values{"token": {"x"}}, map[string]string{"Origin": "https://evil.example"})
			if resp.Header.Get("Content-Security-Policy") != CSP {
				t.Errorf("403 without CSP")
			}
			req, _ := http.NewRequest(http.MethodPut, f.srv.URL+"/ui/inventory", nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Content-Security-Policy") != CSP {
				t.Errorf("PUT /ui/inventory: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
			}
			for name := range f.d.static {
				check(anon, "/ui/static/"+name, false)
			}
		})
	}
}

// TestAssetsStayLocal scans the embedded assets for references to other
// hosts.
func TestAssetsStayLocal(t *testing.T) {
	f := newFixture(t, Options{})
	if len(f.d.static) < 3 {
		t.Fatalf("static assets: %d", len(f.d.static))
	}
	for name, a := range f.d.static {
		body := strings.ReplaceAll(string(a.body), `xmlns="http://www.w3.org/2000/svg"`, "")
		for _, bad := range []string{"http://", "https://", "url(", "@import", "fetch(", "XMLHttpRequest", "WebSocket", "eval(", "innerHTML"} {
			if strings.Contains(body, bad) {
				t.Errorf("static/%s contains %q", name, bad)
			}
		}
		if strings.HasSuffix(name, ".svg") {
			checkHTML(t, name, body)
		}
	}
	// Templates: the same scan over their source, so a conditional branch
	// the fixtures do not render is covered too.
	for _, p := range pageNames {
		b, err := assets.ReadFile("templates/" + p + ".html")
		if err != nil {
			t.Fatal(err)
		}
		src := wholeAction.ReplaceAllString(string(b), `="/ui/`) // a computed link is checked where rendered
		checkHTML(t, "templates/"+p+".html", strings.NewReplacer("{{", "", "}}", "").Replace(src))
	}
}

func TestStaticETag(t *testing.T) {
	f := newFixture(t, Options{})
	c := f.client()
	resp, body := f.get(c, "/ui/static/app.css")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || body == "" {
		t.Fatalf("app.css: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/ui/static/app.css", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp2, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: %d", resp2.StatusCode)
	}
	if resp, _ := f.get(c, "/ui/static/missing.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing asset: %d", resp.StatusCode)
	}
}

// rows counts the body rows of the table with the given id.
func rows(t *testing.T, body, id string) int {
	t.Helper()
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no #%s in page", id)
	}
	tb := body[i:]
	s, e := strings.Index(tb, "<tbody>"), strings.Index(tb, "</tbody>")
	if s < 0 || e < s {
		t.Fatalf("#%s has no tbody", id)
	}
	return strings.Count(tb[s:e], "<tr>")
}

func TestInventoryPage(t *testing.T) {
	f := newFixture(t, populated(t))
	c, _ := f.signIn()
	inv := f.d.inventory()
	all := inv.Endpoints()
	count := func(pred func(inventory.Endpoint) bool) int {
		n := 0
		for _, ep := range all {
			if pred(ep) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		query string
		want  int
	}{
		{"", len(all)},
		{"?status=shadow", count(func(ep inventory.Endpoint) bool { return ep.SpecStatus == inventory.StatusShadow })},
		{"?status=zombie", 1},
		{"?sensitive=true", 2}, // iban on accounts/{id}, pan on the debug endpoint
		{"?class=pan", 1},
		{"?unauthenticated=true", 1},
		{"?exposure=north-south", len(all) - 1},
		{"?exposure=east-west", 1},
		{"?q=legacy", 1},
		{"?status=bogus&exposure=mars", len(all)}, // unknown values are dropped
		{"?api=other", 0},
	}
	for _, tt := range tests {
		resp, body := f.get(c, "/ui/inventory"+tt.query)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", tt.query, resp.StatusCode)
		}
		if got := rows(t, body, "inventory-table"); got != tt.want {
			t.Errorf("inventory%s: %d rows, want %d", tt.query, got, tt.want)
		}
	}
	if count(func(ep inventory.Endpoint) bool { return ep.SpecStatus == inventory.StatusShadow }) == 0 {
		t.Fatal("fixture has no shadow endpoint")
	}
	_, body := f.get(c, "/ui/inventory")
	for _, ep := range all {
		if !strings.Contains(body, `href="/ui/endpoint/`+ep.ID+`"`) {
			t.Errorf("no link to endpoint %s %s", ep.Method, ep.Template)
		}
	}
}

func TestEndpointPage(t *testing.T) {
	f := newFixture(t, populated(t))
	c, _ := f.signIn()
	id := inventory.EndpointID("bank", "GET", "/api/v1/accounts/{AccountId}")
	resp, body := f.get(c, "/ui/endpoint/"+id)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("endpoint page: %d", resp.StatusCode)
	}
	for _, want := range []string{`id="endpoint-detail"`, `id="status-chart"`, "<svg", `class="bar s-2xx"`, `class="bar s-4xx"`,
		`id="latency-p50"`, "documented", "iban", "Object enumeration",
		`id="response-schema"`, "<code>balance.amount</code></td><td>string", "<code>tags[]</code></td><td>string"} {
		if !strings.Contains(body, want) {
			t.Errorf("endpoint page lacks %q", want)
		}
	}
	_, body = f.get(c, "/ui/endpoint/"+inventory.EndpointID("bank", "GET", "/api/v1/accounts"))
	if !strings.Contains(body, `id="undocumented-table"`) || !strings.Contains(body, "debug") {
		t.Errorf("undocumented parameter not shown")
	}
	if resp, _ := f.get(c, "/ui/endpoint/endpoint-0000"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown endpoint: %d", resp.StatusCode)
	}
}

func TestFindingsPages(t *testing.T) {
	f := newFixture(t, populated(t))
	c, _ := f.signIn()
	tests := []struct {
		query string
		want  int
	}{
		{"", 3},
		{"?kind=shadow_endpoint", 1},
		{"?severity=high", 2},
		{"?severity=critical", 1},
		{"?kind=bola_enumeration&severity=critical", 0},
		{"?kind=DROP%20TABLE&severity=extreme", 3},
	}
	for _, tt := range tests {
		resp, body := f.get(c, "/ui/findings"+tt.query)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", tt.query, resp.StatusCode)
		}
		if got := rows(t, body, "findings-table"); got != tt.want {
			t.Errorf("findings%s: %d rows, want %d", tt.query, got, tt.want)
		}
		if strings.Contains(body, "<script>alert(1)") {
			t.Errorf("findings%s: finding title not escaped", tt.query)
		}
	}
	resp, body := f.get(c, "/ui/finding/bola_enumeration-0123456789abcdef")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("finding page: %d", resp.StatusCode)
	}
	for _, want := range []string{`id="finding-detail"`, `id="evidence-table"`, "distinct_objects", "40", `[&#34;req-1&#34;,&#34;req-2&#34;]`,
		"pci-dss:6.4.1", `href="/ui/endpoint/` + inventory.EndpointID("bank", "GET", "/api/v1/accounts/{AccountId}")} {
		if !strings.Contains(body, want) {
			t.Errorf("finding page lacks %q", want)
		}
	}
	if resp, _ := f.get(c, "/ui/finding/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown finding: %d", resp.StatusCode)
	}

	failing := newFixture(t, Options{Findings: failingFindings})
	fc, _ := failing.signIn()
	if resp, body := failing.get(fc, "/ui/findings"); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `role="alert"`) {
		t.Errorf("failing store: %d", resp.StatusCode)
	}
	if resp, _ := failing.get(fc, "/ui/"); resp.StatusCode != http.StatusOK {
		t.Errorf("overview with a failing store: %d", resp.StatusCode)
	}
}

func TestOverviewAndConfigPages(t *testing.T) {
	f := newFixture(t, populated(t))
	c, _ := f.signIn()
	_, body := f.get(c, "/ui/")
	for _, want := range []string{`id="traffic-chart"`, "<svg", `id="blocks-chart"`, `id="reasons-table"`, "ratelimit:rate_limited",
		"waf:sql_injection", `class="bar s-pass"`, `class="bar s-block"`, `id="total-requests">900<`, `id="total-blocked">225 `,
		`class="legend"`, "time (UTC)", `id="findings-by-severity"`} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	_, body = f.get(c, "/ui/config")
	if !strings.Contains(body, `id="config-yaml"`) || !strings.Contains(body, "token: &#39;***&#39;") {
		t.Errorf("config page does not show the redacted config")
	}
	if strings.Contains(body, secretAdminToken) || strings.Contains(body, secretClientSecret) {
		t.Errorf("config page leaks a secret")
	}
}

func TestEmptyPages(t *testing.T) {
	f := newFixture(t, Options{})
	c, _ := f.signIn()
	for page, want := range map[string]string{
		"/ui/":          "No traffic timeline",
		"/ui/inventory": "The inventory is disabled",
		"/ui/findings":  "Findings are not kept",
		"/ui/config":    "not available",
	} {
		resp, body := f.get(c, page)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("%s: %d, want %q", page, resp.StatusCode, want)
		}
	}
	empty, _ := inventory.New(inventory.Options{})
	f = newFixture(t, Options{Inventory: func() *inventory.Inventory { return empty }, Timeline: NewTimeline(0, 0)})
	c, _ = f.signIn()
	_, body := f.get(c, "/ui/inventory")
	if rows(t, body, "inventory-table") != 0 || !strings.Contains(body, "No endpoints yet") {
		t.Errorf("empty inventory page")
	}
	_, body = f.get(c, "/ui/")
	if !strings.Contains(body, `id="traffic-chart"`) || !strings.Contains(body, "No data in this window") {
		t.Errorf("empty overview chart")
	}
}

// TestMountedOnAdmin serves the dashboard through the admin handler: the
// dashboard has its own sign-in, the admin API still wants the bearer
// token.
func TestMountedOnAdmin(t *testing.T) {
	ui, err := New(Options{Token: func() string { return testToken }})
	if err != nil {
		t.Fatal(err)
	}
	h := admin.New(admin.Options{Token: func() string { return testToken }, Registry: prometheus.NewRegistry(), UI: ui})
	for path, want := range map[string]int{"/ui/login": 200, "/ui/": 303, "/ui": 307, "/api/v1/inventory": 401, "/healthz": 200} {
		w := recorder()
		h.ServeHTTP(w, httptestRequest(http.MethodGet, path, ""))
		if w.Code != want {
			t.Errorf("GET %s: %d, want %d", path, w.Code, want)
		}
	}
}

func TestSchemaRows(t *testing.T) {
	obj := func(props map[string]any) map[string]any {
		return map[string]any{"type": "object", "properties": props}
	}
	str := map[string]any{"type": "string"}
	tests := []struct {
		name string
		in   map[string]any
		want string
	}{
		{"none", nil, ""},
		{"scalar body", str, "(body):string"},
		{"nested", obj(map[string]any{"b": obj(map[string]any{"c": str}), "a": str}), "a:string b:object b.c:string"},
		{"array of objects", map[string]any{"type": "array", "items": obj(map[string]any{"id": str})}, "(body):array []:object [].id:string"},
		{"map keyed by data", map[string]any{"type": "object", "additionalProperties": obj(map[string]any{"n": str})}, "{*}:object {*}.n:string"},
		{"hostile types", map[string]any{"type": 7, "properties": map[string]any{"x": "not a schema"}}, ""},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range schemaRows(tt.in) {
			got = append(got, r.Path+":"+r.Type)
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, g, tt.want)
		}
	}
	wide := map[string]any{}
	for i := range 2 * maxSchemaRows {
		wide[fmt.Sprintf("p%04d", i)] = str
	}
	if n := len(schemaRows(obj(wide))); n != maxSchemaRows {
		t.Errorf("%d rows, want the cap %d", n, maxSchemaRows)
	}
}
