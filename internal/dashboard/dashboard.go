// Package dashboard is Bulwark's web dashboard, served by the admin
// listener under /ui/: the traffic overview, the endpoint inventory, the
// findings and the running config (secrets redacted).
//
// Every asset is embedded: server-rendered html/template pages, one small
// stylesheet, one small script (filter auto-submit, chart tooltips) and
// charts drawn as inline SVG on the server. Nothing is loaded from another
// host and every page works with JavaScript disabled.
//
// Sign-in is with the admin token, exchanged for a server-side session
// (HttpOnly, SameSite=Strict cookie); every POST carries a CSRF token and
// a foreign Origin is refused; every response carries a strict Content
// Security Policy that allows no inline script or style.
package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/finding"
	"github.com/bulwarkapi/bulwark/internal/inventory"
	"github.com/bulwarkapi/bulwark/internal/store"
)

// Prefix is where the dashboard is mounted on the admin listener.
const Prefix = "/ui/"

// CSP is the Content Security Policy of every dashboard response.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

//go:embed templates/*.html static/*
var assets embed.FS

// Options are what the dashboard reads. Only Token is required.
type Options struct {
	// Token returns the admin token (it may change on reload; sessions
	// signed in with an older token end).
	Token func() string
	// Inventory returns the live inventory; nil (or a nil func) when the
	// inventory is disabled.
	Inventory func() *inventory.Inventory
	// Findings lists stored findings; nil when findings are not kept.
	Findings func(ctx context.Context, f store.FindingFilter) ([]finding.Finding, error)
	// Config returns the running config, shown with secrets redacted.
	Config func() *config.Config
	// Timeline feeds the overview charts; nil shows none.
	Timeline *Timeline
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives template and store errors (default slog.Default()).
	Logger *slog.Logger
}

// maxFindings is the most findings one page asks the store for.
const maxFindings = 1000

// asset is one embedded static file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

type dashboard struct {
	o      Options
	sess   *sessions
	pages  map[string]*template.Template
	static map[string]asset
}

// New returns the dashboard handler for the paths under /ui/.
func New(o Options) (http.Handler, error) {
	_, h, err := build(o)
	return h, err
}

// build returns the dashboard and its handler.
func build(o Options) (*dashboard, http.Handler, error) {
	if o.Token == nil {
		return nil, nil, errors.New("dashboard: Options.Token is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	d := &dashboard{o: o, sess: newSessions(), pages: map[string]*template.Template{}, static: map[string]asset{}}
	if err := d.loadTemplates(); err != nil {
		return nil, nil, err
	}
	if err := d.loadStatic(); err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/static/{name}", d.serveStatic)
	mux.HandleFunc("GET /ui/login", d.loginPage)
	mux.HandleFunc("POST /ui/login", d.login)
	mux.HandleFunc("POST /ui/logout", d.logout)
	mux.HandleFunc("GET /ui/{$}", d.signedIn(d.overview))
	mux.HandleFunc("GET /ui/inventory", d.signedIn(d.inventoryPage))
	mux.HandleFunc("GET /ui/endpoint/{id}", d.signedIn(d.endpointPage))
	mux.HandleFunc("GET /ui/findings", d.signedIn(d.findingsPage))
	mux.HandleFunc("GET /ui/finding/{id}", d.signedIn(d.findingPage))
	mux.HandleFunc("GET /ui/config", d.signedIn(d.configPage))
	mux.HandleFunc("/ui/", d.fallback)
	return d, headers(mux), nil
}

// headers sets the security headers of every response.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func (d *dashboard) now() time.Time { return d.o.Now() }

func (d *dashboard) token() string { return d.o.Token() }

func (d *dashboard) inventory() *inventory.Inventory {
	if d.o.Inventory == nil {
		return nil
	}
	return d.o.Inventory()
}

// pageNames are the page templates; each is parsed with the layout.
var pageNames = []string{"login", "overview", "inventory", "endpoint", "findings", "finding", "config", "error"}

func (d *dashboard) loadTemplates() error {
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets,
			"templates/layout.html", "templates/chart.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("dashboard: parse %s: %w", name, err)
		}
		d.pages[name] = t
	}
	return nil
}

func (d *dashboard) loadStatic() error {
	entries, err := fs.ReadDir(assets, "static")
	if err != nil {
		return fmt.Errorf("dashboard: static: %w", err)
	}
	for _, e := range entries {
		body, err := fs.ReadFile(assets, "static/"+e.Name())
		if err != nil {
			return fmt.Errorf("dashboard: static: %w", err)
		}
		ctype := mime.TypeByExtension(path.Ext(e.Name()))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		d.static[e.Name()] = asset{body: body, ctype: ctype, etag: fmt.Sprintf(`"%x"`, sum[:12])}
	}
	return nil
}

// serveStatic serves an embedded asset; assets are public (the login page
// needs them) and revalidated by ETag.
func (d *dashboard) serveStatic(w http.ResponseWriter, r *http.Request) {
	a, ok := d.static[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	if match := r.Header.Get("If-None-Match"); match != "" && match == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body)
	}
}

// view is what every page template gets.
type view struct {
	Title  string
	Nav    string // the active navigation entry
	CSRF   string // the session's CSRF token ("" when signed out)
	Signed bool
	Now    time.Time
	Page   any
}

// render executes a page into a buffer, so that a template error never
// sends half a page.
func (d *dashboard) render(w http.ResponseWriter, status int, name string, v view) {
	t, ok := d.pages[name]
	if !ok {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if v.Now.IsZero() {
		v.Now = d.now()
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		d.o.Logger.Error("dashboard: render page", "page", name, "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage renders a short error page.
func (d *dashboard) errorPage(w http.ResponseWriter, status int, sess *session, msg string) {
	v := view{Title: http.StatusText(status), Page: errorData{Status: status, Message: msg}}
	if sess != nil {
		v.Signed, v.CSRF = true, sess.csrf
	}
	d.render(w, status, "error", v)
}

type errorData struct {
	Status  int
	Message string
}

// pageFunc is a page that needs a signed-in session.
type pageFunc func(w http.ResponseWriter, r *http.Request, s *session)

// signedIn runs p with the request's session, or sends the browser to
// the sign-in page.
func (d *dashboard) signedIn(p pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := d.session(r)
		if !ok {
			if cookieValue(r, sessionCookie) != "" {
				setCookie(w, r, sessionCookie, "", -1)
			}
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		p(w, r, s)
	}
}

// session returns the live session of the request.
func (d *dashboard) session(r *http.Request) (*session, bool) {
	return d.sess.lookup(cookieValue(r, sessionCookie), d.now(), d.token())
}

// fallback answers every other path under /ui/: 405 for other methods,
// the sign-in page for strangers, 404 for the signed-in.
func (d *dashboard) fallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	d.signedIn(func(w http.ResponseWriter, _ *http.Request, s *session) {
		d.errorPage(w, http.StatusNotFound, s, "There is no such dashboard page.")
	})(w, r)
}

// loginData is the sign-in page's.
type loginData struct {
	CSRF  string
	Error string
}

// loginPage shows the sign-in form, with a fresh double-submit cookie.
func (d *dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := d.session(r); ok {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	d.renderLogin(w, r, http.StatusOK, "")
}

func (d *dashboard) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	csrf := cookieValue(r, loginCookie)
	if !wellFormed(csrf) {
		csrf = randomToken()
		setCookie(w, r, loginCookie, csrf, time.Hour)
	}
	d.render(w, status, "login", view{Title: "Sign in", Page: loginData{CSRF: csrf, Error: msg}})
}

// loginForm is a parsed sign-in form.
type loginForm struct {
	Token string
	CSRF  string
}

// maxTokenLen bounds the token field: admin tokens are tens of bytes.
const maxTokenLen = 1024

// parseLoginForm reads the sign-in form's fields. csrfOK is false when
// the CSRF field is missing, repeated or malformed; tokenOK when the token
// field is missing, repeated, empty or oversized (the field is then "").
func parseLoginForm(v map[string][]string) (f loginForm, csrfOK, tokenOK bool) {
	if c := v[csrfField]; len(c) == 1 && wellFormed(c[0]) {
		f.CSRF, csrfOK = c[0], true
	}
	if t := v[tokenField]; len(t) == 1 && t[0] != "" && len(t[0]) <= maxTokenLen {
		f.Token, tokenOK = t[0], true
	}
	return f, csrfOK, tokenOK
}

// login checks the posted admin token and starts a session.
func (d *dashboard) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		d.errorPage(w, http.StatusForbidden, nil, "This form was posted from another site.")
		return
	}
	now, addr := d.now(), clientAddr(r)
	if d.sess.throttled(addr, now) {
		w.Header().Set("Retry-After", "1")
		d.renderLogin(w, r, http.StatusTooManyRequests, "Too many attempts: wait a second and try again.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		d.renderLogin(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	f, csrfOK, tokenOK := parseLoginForm(r.PostForm)
	cookie := cookieValue(r, loginCookie)
	if !csrfOK || !wellFormed(cookie) || !equal(cookie, f.CSRF) {
		d.sess.fail(addr, now)
		d.renderLogin(w, r, http.StatusForbidden, "The sign-in form expired: try again.")
		return
	}
	want := d.token()
	if !tokenOK || want == "" || !equal(f.Token, want) {
		d.sess.fail(addr, now)
		d.renderLogin(w, r, http.StatusUnauthorized, "Wrong admin token.")
		return
	}
	id, _ := d.sess.create(now, sha256.Sum256([]byte(want)))
	setCookie(w, r, sessionCookie, id, sessionTTL)
	setCookie(w, r, loginCookie, "", -1)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// logout ends the session (CSRF-checked).
func (d *dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		d.errorPage(w, http.StatusForbidden, nil, "This form was posted from another site.")
		return
	}
	s, ok := d.session(r)
	if !ok {
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil || !equal(r.PostForm.Get(csrfField), s.csrf) {
		d.errorPage(w, http.StatusForbidden, s, "The form's CSRF token is missing or wrong: reload the page and try again.")
		return
	}
	d.sess.remove(cookieValue(r, sessionCookie))
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// funcs are the template helpers.
var funcs = template.FuncMap{
	"when":      when,
	"iso":       func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"num":       num,
	"join":      func(xs []string) string { return strings.Join(xs, ", ") },
	"f1":        func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
	"ms":        ms,
	"short":     short,
	"pct":       func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + "%" },
	"sevClass":  func(s finding.Severity) string { return "sev sev-" + s.String() },
	"sensitive": isSensitiveClass,
	"add":       func(a, b float64) float64 { return a + b },
}

// when formats a time for a table ("—" for none).
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// num formats a count with thousands separators.
func num(v any) string {
	var s string
	switch n := v.(type) {
	case int:
		s = strconv.Itoa(n)
	case int64:
		s = strconv.FormatInt(n, 10)
	case uint64:
		s = strconv.FormatUint(n, 10)
	default:
		return fmt.Sprint(v)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func ms(v float64) string {
	switch {
	case v == 0:
		return "—"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
}

// short cuts a long hash for a table cell.
func short(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
