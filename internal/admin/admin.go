// Package admin serves the admin listener: health and readiness for the
// orchestrator, Prometheus metrics, the admin API (/api/v1/) and the
// dashboard (/ui/, mounted from internal/dashboard). Everything but
// /healthz, /readyz and the dashboard requires the admin token, compared
// in constant time; the dashboard has its own session sign-in with the
// same token.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// Options configure the admin handler.
type Options struct {
	// Token returns the current admin token (it may change on reload).
	Token func() string
	// Registry holds the metrics to expose.
	Registry *prometheus.Registry
	// Ready reports whether the gateway serves traffic (false while
	// starting or draining).
	Ready func() bool
	// RequestID makes the id for problem responses.
	RequestID func() string
	// Data feeds the admin API (/api/v1/...).
	Data Data
	// UI is the dashboard, served under /ui/ with its own sign-in; nil
	// serves none.
	UI http.Handler
}

// New returns the admin handler.
func New(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if o.Ready != nil && !o.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, `{"status":"not ready"}`)
			return
		}
		writeJSON(w, http.StatusOK, `{"status":"ready"}`)
	})
	metrics := promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	mux.Handle("GET /metrics", o.authorize(metrics))
	// Go's profiler, for operators chasing latency or memory; token only.
	mux.Handle("GET /debug/pprof/", o.authorize(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", o.authorize(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", o.authorize(http.HandlerFunc(pprof.Trace)))
	o.mountAPI(mux)
	if o.UI != nil {
		mux.Handle("/ui/", o.UI)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Authenticate before saying whether a path exists.
		if !o.authorized(r) {
			o.deny(w)
			return
		}
		pipeline.WriteProblem(w, pipeline.NewProblem(http.StatusNotFound, "not_found", "No such admin resource.", o.id()), nil)
	})
	return securityHeaders(mux)
}

func (o Options) id() string {
	if o.RequestID == nil {
		return ""
	}
	return o.RequestID()
}

func (o Options) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !o.authorized(r) {
			o.deny(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized compares SHA-256 digests in constant time, so neither the
// token's content nor its length leaks through timing.
func (o Options) authorized(r *http.Request) bool {
	want := ""
	if o.Token != nil {
		want = o.Token()
	}
	if want == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (o Options) deny(w http.ResponseWriter) {
	pipeline.WriteProblem(w, pipeline.NewProblem(http.StatusUnauthorized, "admin_token_required",
		"Send the admin token as 'Authorization: Bearer <token>'.", o.id()),
		http.Header{"Www-Authenticate": {`Bearer realm="bulwark-admin"`}})
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body + "\n"))
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}
