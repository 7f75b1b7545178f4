package dashboard

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestLogin(t *testing.T) {
	tests := []struct {
		name       string
		token      string
		csrf       func(good string) string
		wantStatus int
		wantCookie bool
	}{
		{"right token", testToken, func(g string) string { return g }, http.StatusSeeOther, true},
		{"wrong token", "wrong-token-wrong-token-wrong", func(g string) string { return g }, http.StatusUnauthorized, false},
		{"empty token", "", func(g string) string { return g }, http.StatusUnauthorized, false},
		{"token prefix", testToken[:10], func(g string) string { return g }, http.StatusUnauthorized, false},
		{"missing csrf", testToken, func(string) string { return "" }, http.StatusForbidden, false},
		{"wrong csrf", testToken, func(string) string { return randomToken() }, http.StatusForbidden, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			c := f.client()
			good := f.loginCSRF(c)
			form := url.Values{"token": {tt.token}}
			if v := tt.csrf(good); v != "" {
				form.Set("csrf", v)
			}
			resp, body := f.post(c, "/ui/login", form, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d\n%s", resp.StatusCode, tt.wantStatus, body)
			}
			var sess *http.Cookie
			for _, ck := range resp.Cookies() {
				if ck.Name == sessionCookie && ck.MaxAge > 0 {
					sess = ck
				}
			}
			if (sess != nil) != tt.wantCookie {
				t.Fatalf("session cookie set: %v, want %v", sess != nil, tt.wantCookie)
			}
			if sess != nil {
				if !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/ui/" || sess.MaxAge != int(sessionTTL/time.Second) {
					t.Errorf("session cookie attributes: %+v", sess)
				}
				if sess.Secure {
					t.Errorf("Secure set on a plain-HTTP request")
				}
				if !wellFormed(sess.Value) {
					t.Errorf("session id %q is not 32 random bytes", sess.Value)
				}
				if resp.Header.Get("Location") != "/ui/" {
					t.Errorf("redirect to %q", resp.Header.Get("Location"))
				}
			}
			if tt.wantStatus == http.StatusUnauthorized && !strings.Contains(body, "Wrong admin token") {
				t.Errorf("401 page does not say why:\n%s", body)
			}
		})
	}
}

func TestLoginSecureCookieOverTLS(t *testing.T) {
	d, h, err := build(Options{Token: func() string { return testToken }})
	if err != nil {
		t.Fatal(err)
	}
	_ = d
	req := httptestRequest(http.MethodGet, "https://admin.local/ui/login", "")
	w := recorder()
	h.ServeHTTP(w, req)
	var csrf string
	for _, c := range w.Result().Cookies() {
		if c.Name == loginCookie {
			csrf = c.Value
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("login cookie over TLS: %+v", c)
			}
		}
	}
	req = httptestRequest(http.MethodPost, "https://admin.local/ui/login", url.Values{"token": {testToken}, "csrf": {csrf}}.Encode())
	req.AddCookie(&http.Cookie{Name: loginCookie, Value: csrf})
	w = recorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("TLS sign-in: %d", w.Code)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie && !c.Secure {
			t.Errorf("session cookie over TLS without Secure: %+v", c)
		}
	}
}

func TestLoginThrottle(t *testing.T) {
	f := newFixture(t, Options{})
	c := f.client()
	csrf := f.loginCSRF(c)
	bad := url.Values{"token": {"not-the-token-not-the-token"}, "csrf": {csrf}}
	if resp, _ := f.post(c, "/ui/login", bad, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("first wrong token: %d", resp.StatusCode)
	}
	// Within the second: refused without checking, even the right token.
	resp, _ := f.post(c, "/ui/login", bad, nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second wrong token within a second: %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	good := url.Values{"token": {testToken}, "csrf": {csrf}}
	if resp, _ := f.post(c, "/ui/login", good, nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right token while throttled: %d", resp.StatusCode)
	}
	f.advance(loginThrottle)
	if resp, body := f.post(c, "/ui/login", good, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("right token after the pause: %d\n%s", resp.StatusCode, body)
	}
}

func TestSessionRequired(t *testing.T) {
	f := newFixture(t, populated(t))
	c := f.client()
	for _, p := range []string{"/ui/", "/ui/inventory", "/ui/endpoint/x", "/ui/findings", "/ui/finding/x", "/ui/config", "/ui/nope"} {
		resp, body := f.get(c, p)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
			t.Errorf("GET %s without a session: %d %q", p, resp.StatusCode, resp.Header.Get("Location"))
		}
		if strings.Contains(body, "<table") {
			t.Errorf("GET %s without a session leaked a page", p)
		}
	}
	// A forged session cookie is no session either.
	u, _ := url.Parse(f.srv.URL + "/ui/")
	c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: randomToken(), Path: "/ui/"}})
	if resp, _ := f.get(c, "/ui/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("forged session: %d", resp.StatusCode)
	}
	// Static assets are public: the sign-in page needs them.
	if resp, _ := f.get(c, "/ui/static/app.css"); resp.StatusCode != http.StatusOK {
		t.Errorf("static without a session: %d", resp.StatusCode)
	}
}

func TestSessionEnds(t *testing.T) {
	t.Run("expiry", func(t *testing.T) {
		f := newFixture(t, Options{})
		c, _ := f.signIn()
		f.advance(sessionTTL)
		if resp, _ := f.get(c, "/ui/"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("expired session: %d", resp.StatusCode)
		}
	})
	t.Run("token change", func(t *testing.T) {
		f := newFixture(t, Options{})
		c, _ := f.signIn()
		f.setToken("a-new-admin-token-after-reload-000")
		if resp, _ := f.get(c, "/ui/"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("session after token change: %d", resp.StatusCode)
		}
		f.setToken(testToken)
		if resp, _ := f.get(c, "/ui/"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("a session ended by a token change came back: %d", resp.StatusCode)
		}
	})
	t.Run("no token configured", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.setToken("")
		c := f.client()
		csrf := f.loginCSRF(c)
		if resp, _ := f.post(c, "/ui/login", url.Values{"token": {"anything-at-all-here"}, "csrf": {csrf}}, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("sign-in without a configured token: %d", resp.StatusCode)
		}
	})
	t.Run("logout", func(t *testing.T) {
		f := newFixture(t, Options{})
		c, csrf := f.signIn()
		resp, _ := f.post(c, "/ui/logout", url.Values{"csrf": {csrf}}, nil)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
			t.Fatalf("logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if f.d.sess.count() != 0 {
			t.Errorf("%d sessions left after logout", f.d.sess.count())
		}
		if resp, _ := f.get(c, "/ui/"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("page after logout: %d", resp.StatusCode)
		}
	})
}

func TestCSRF(t *testing.T) {
	tests := []struct {
		name   string
		csrf   func(good string) string
		origin string
		fetch  string
		want   int
	}{
		{"valid", func(g string) string { return g }, "", "", http.StatusSeeOther},
		{"valid with own origin", func(g string) string { return g }, "self", "same-origin", http.StatusSeeOther},
		{"missing token", func(string) string { return "" }, "", "", http.StatusForbidden},
		{"wrong token", func(string) string { return randomToken() }, "", "", http.StatusForbidden},
		{"token of another length", func(g string) string { return g + "x" }, "", "", http.StatusForbidden},
		{"foreign origin", func(g string) string { return g }, "https://evil.example", "", http.StatusForbidden},
		{"null origin", func(g string) string { return g }, "null", "", http.StatusForbidden},
		{"null origin, same-origin fetch", func(g string) string { return g }, "null", "same-origin", http.StatusSeeOther},
		{"null origin, cross-site fetch", func(g string) string { return g }, "null", "cross-site", http.StatusForbidden},
		{"own origin, same-site fetch", func(g string) string { return g }, "self", "same-site", http.StatusForbidden},
		{"other port", func(g string) string { return g }, "http://127.0.0.1:1", "", http.StatusForbidden},
		{"cross-site fetch", func(g string) string { return g }, "", "cross-site", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run("logout/"+tt.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			c, good := f.signIn()
			hdr := map[string]string{}
			if tt.origin == "self" {
				hdr["Origin"] = f.srv.URL
			} else if tt.origin != "" {
				hdr["Origin"] = tt.origin
			}
			if tt.fetch != "" {
				hdr["Sec-Fetch-Site"] = tt.fetch
			}
			form := url.Values{}
			if v := tt.csrf(good); v != "" {
				form.Set("csrf", v)
			}
			resp, _ := f.post(c, "/ui/logout", form, hdr)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			signedIn := f.d.sess.count() == 1
			if signedIn != (tt.want != http.StatusSeeOther) {
				t.Errorf("session kept: %v after status %d", signedIn, resp.StatusCode)
			}
		})
		t.Run("login/"+tt.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			c := f.client()
			good := f.loginCSRF(c)
			hdr := map[string]string{}
			if tt.origin == "self" {
				hdr["Origin"] = f.srv.URL
			} else if tt.origin != "" {
				hdr["Origin"] = tt.origin
			}
			if tt.fetch != "" {
				hdr["Sec-Fetch-Site"] = tt.fetch
			}
			form := url.Values{"token": {testToken}}
			if v := tt.csrf(good); v != "" {
				form.Set("csrf", v)
			}
			resp, _ := f.post(c, "/ui/login", form, hdr)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	t.Run("login without the double-submit cookie", func(t *testing.T) {
		f := newFixture(t, Options{})
		csrf := f.loginCSRF(f.client())
		resp, _ := f.post(f.client(), "/ui/login", url.Values{"token": {testToken}, "csrf": {csrf}}, nil)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", resp.StatusCode)
		}
	})
}

func TestSessionsBounded(t *testing.T) {
	s := newSessions()
	sum := [32]byte{1}
	var first string
	for i := range maxSessions + 10 {
		id, _ := s.create(now.Add(time.Duration(i)*time.Millisecond), sum)
		if i == 0 {
			first = id
		}
	}
	if n := s.count(); n != maxSessions {
		t.Fatalf("%d sessions kept, want %d", n, maxSessions)
	}
	if _, ok := s.lookup(first, now, "x"); ok {
		t.Errorf("the oldest session survived eviction")
	}
}

func TestThrottleTableBounded(t *testing.T) {
	s := newSessions()
	for i := range maxThrottled + 100 {
		s.fail("10.0.0."+strings.Repeat("1", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), now)
	}
	if len(s.failed) > maxThrottled {
		t.Fatalf("%d addresses remembered", len(s.failed))
	}
	// Full of fresh failures: a new address waits (fail closed) ...
	if !s.throttled("192.0.2.1", now) {
		t.Errorf("a full table of recent failures did not throttle")
	}
	// ... until they age out.
	if s.throttled("192.0.2.1", now.Add(loginThrottle)) {
		t.Errorf("old failures still throttle")
	}
}
