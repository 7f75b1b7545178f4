package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"sync"
	"time"
)

// Session and login limits.
const (
	// sessionTTL is how long a sign-in lasts: a working day.
	sessionTTL = 8 * time.Hour
	// maxSessions bounds the server-side sessions: a handful of operators
	// use the dashboard; beyond it the session closest to expiry goes.
	maxSessions = 256
	// loginThrottle is the pause a client address must keep after a failed
	// sign-in: one guess per second at most.
	loginThrottle = time.Second
	// maxThrottled bounds the addresses remembered for throttling; when
	// full of recent failures, every sign-in waits (fail closed).
	maxThrottled = 4096
	// maxFormBytes bounds a POSTed form.
	maxFormBytes = 8 << 10
	// randomBytes is the size of session ids and CSRF tokens.
	randomBytes = 32
)

// Cookie and form field names.
const (
	sessionCookie = "bulwark_session"
	loginCookie   = "bulwark_login_csrf"
	csrfField     = "csrf"
	tokenField    = "token"
	cookiePath    = "/ui/"
)

// session is one signed-in browser.
type session struct {
	csrf    string
	expires time.Time
	// tokenSum is the digest of the admin token the session signed in
	// with: a changed token invalidates the session.
	tokenSum [32]byte
}

// sessions is the bounded server-side session map, keyed by the digest
// of the session id (the id itself is never kept).
type sessions struct {
	mu     sync.Mutex
	byID   map[[32]byte]*session
	failed map[string]time.Time // client address -> last failed sign-in
}

func newSessions() *sessions {
	return &sessions{byID: map[[32]byte]*session{}, failed: map[string]time.Time{}}
}

// randomToken returns randomBytes of crypto randomness, base64url.
func randomToken() string {
	b := make([]byte, randomBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// wellFormed reports whether s looks like a token randomToken made.
func wellFormed(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(randomBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// equal compares two secrets in constant time (digests, so that the
// length does not leak either).
func equal(a, b string) bool {
	x, y := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

// create starts a session for the admin token digest and returns its id.
func (s *sessions) create(now time.Time, tokenSum [32]byte) (id string, sess *session) {
	id = randomToken()
	sess = &session{csrf: randomToken(), expires: now.Add(sessionTTL), tokenSum: tokenSum}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= maxSessions {
		s.evictLocked(now)
	}
	s.byID[sha256.Sum256([]byte(id))] = sess
	return id, sess
}

// evictLocked drops expired sessions and, if still full, the one closest
// to expiry.
func (s *sessions) evictLocked(now time.Time) {
	var (
		oldest    [32]byte
		oldestExp time.Time
	)
	for k, v := range s.byID {
		if !now.Before(v.expires) {
			delete(s.byID, k)
			continue
		}
		if oldestExp.IsZero() || v.expires.Before(oldestExp) {
			oldest, oldestExp = k, v.expires
		}
	}
	if len(s.byID) >= maxSessions {
		delete(s.byID, oldest)
	}
}

// lookup returns the live session of id, signed in with the current admin
// token; an expired or stale session is deleted.
func (s *sessions) lookup(id string, now time.Time, token string) (*session, bool) {
	if !wellFormed(id) || token == "" {
		return nil, false
	}
	key := sha256.Sum256([]byte(id))
	cur := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[key]
	if !ok {
		return nil, false
	}
	if !now.Before(sess.expires) || subtle.ConstantTimeCompare(sess.tokenSum[:], cur[:]) != 1 {
		delete(s.byID, key)
		return nil, false
	}
	return sess, true
}

// remove ends the session of id.
func (s *sessions) remove(id string) {
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, key)
}

// count returns the number of sessions kept (for tests).
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// throttled reports whether addr failed a sign-in less than loginThrottle
// ago (or the throttle table is full of recent failures).
func (s *sessions) throttled(addr string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.failed[addr]; ok && now.Sub(t) < loginThrottle {
		return true
	}
	if _, ok := s.failed[addr]; !ok && len(s.failed) >= maxThrottled {
		s.pruneLocked(now)
		return len(s.failed) >= maxThrottled
	}
	return false
}

// fail records a failed sign-in of addr.
func (s *sessions) fail(addr string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.failed[addr]; !ok && len(s.failed) >= maxThrottled {
		s.pruneLocked(now)
		if len(s.failed) >= maxThrottled {
			return
		}
	}
	s.failed[addr] = now
}

func (s *sessions) pruneLocked(now time.Time) {
	for a, t := range s.failed {
		if now.Sub(t) >= loginThrottle {
			delete(s.failed, a)
		}
	}
}

// clientAddr is the throttling key of a request: the peer address without
// its port. The admin listener trusts no forwarding header.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// sameOrigin reports whether a POST may come from this page: no Sec-Fetch-Site
// of another site, and no Origin header (an old browser) or exactly our
// origin. Under "Referrer-Policy: no-referrer" browsers send "Origin:
// null" even for a same-origin form, so "null" passes when the browser's
// fetch metadata vouches for the same origin (Sec-Fetch-Site: same-origin,
// sent to loopback and HTTPS origins) and is refused otherwise.
func sameOrigin(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	if site == "cross-site" || site == "same-site" {
		return false
	}
	origin := r.Header.Values("Origin")
	switch {
	case len(origin) == 0:
		return true
	case len(origin) > 1:
		return false
	case origin[0] == "null":
		return site == "same-origin"
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return origin[0] == scheme+"://"+r.Host
}

// setCookie writes a dashboard cookie: HttpOnly, SameSite=Strict, scoped
// to /ui/, Secure on TLS. A negative maxAge deletes it.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     cookiePath,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

// cookieValue returns the value of the named cookie ("" when absent).
func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}
