package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/upstream"
)

// listenerHandler serves one client listener; it knows which listener it
// is so it can apply that listener's HSTS policy.
type listenerHandler struct {
	g   *Gateway
	idx int
}

var exchanges = sync.Pool{New: func() any { return new(pipeline.Exchange) }}

// retryAfterInFlight is the Retry-After, in seconds, of a request shed by
// the in-flight cap: long enough for a burst to pass.
const retryAfterInFlight = "1"

func (h listenerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.g
	start := time.Now()
	snap := g.snap.Load()
	cfg := snap.cfg

	x := exchanges.Get().(*pipeline.Exchange)
	x.Start = start
	x.TLS = r.TLS != nil
	x.Pipeline = snap.pipeline
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		x.Client = ap
		x.ClientAddr, x.ViaProxy = snap.clients.resolve(ap.Addr(), r.Header)
	}
	x.RequestID = requestID(r.Header.Get(cfg.RequestID.Header), *cfg.RequestID.AcceptIncoming)
	ctx := pipeline.NewContext(r.Context(), x)
	r = r.WithContext(ctx)
	x.Request = r

	rw := &responseWriter{ResponseWriter: w}
	hdr := w.Header()
	hdr.Set(cfg.RequestID.Header, x.RequestID)
	if h.idx < len(snap.hsts) && snap.hsts[h.idx] != "" {
		hdr.Set("Strict-Transport-Security", snap.hsts[h.idx])
	}

	n := g.inFlight.Add(1)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared by identity, as net/http does
				g.finish(x, rw)
				panic(v)
			}
			g.metrics.Panics.Inc()
			g.logger.Error("panic while handling request", "request_id", x.RequestID, "api", x.API, "panic", v, "stack", string(debug.Stack()))
			x.Record(pipeline.Decision{Stage: "gateway", Action: pipeline.Stop, Status: http.StatusInternalServerError, Reason: "internal_error", Enforced: true})
			if !rw.wrote {
				pipeline.WriteProblem(rw, pipeline.NewProblem(http.StatusInternalServerError, "internal_error", "The gateway failed to handle this request.", x.RequestID), nil)
			}
		}
		g.finish(x, rw)
	}()

	if lim := int64(cfg.Limits.MaxInFlight); lim > 0 && n > lim {
		g.metrics.ConnRejected.WithLabelValues("in_flight").Inc()
		g.stop(rw, x, pipeline.Decision{Status: http.StatusServiceUnavailable, Reason: "overloaded",
			Detail: "The gateway is at capacity; retry shortly.", Headers: http.Header{"Retry-After": {retryAfterInFlight}}})
		return
	}
	if headerBytes(r) > int(cfg.Limits.MaxHeaderBytes) {
		g.metrics.ConnRejected.WithLabelValues("header_too_large").Inc()
		g.stop(rw, x, pipeline.Decision{Status: http.StatusRequestHeaderFieldsTooLarge, Reason: "headers_too_large",
			Detail: "The request headers exceed the size this gateway accepts.", Headers: http.Header{"Connection": {"close"}}})
		return
	}
	maxBody := int64(cfg.Limits.MaxBodyBytes)
	if maxBody > 0 && r.ContentLength > maxBody {
		g.metrics.ConnRejected.WithLabelValues("body_too_large").Inc()
		g.stop(rw, x, bodyTooLarge())
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &bodyReader{rc: r.Body, x: x, max: maxBody}
	}

	d := snap.pipeline.RunRequest(ctx, x)
	for _, h := range x.ResponseHeaders {
		// Add, not Set: the RateLimit fields are lists, and the limits
		// counted before and after authentication each add their part.
		hdr.Add(h.Name, h.Value)
	}
	if d != nil {
		pipeline.WriteDecision(rw, d, x.RequestID)
		return
	}
	if x.Target == nil { // unreachable: route stops when no API matched
		g.stop(rw, x, pipeline.Decision{Status: http.StatusNotFound, Reason: "no_route"})
		return
	}
	x.Target.ServeHTTP(rw, r)
}

// finish records the exchange and returns it to the pool.
func (g *Gateway) finish(x *pipeline.Exchange, rw *responseWriter) {
	x.Status = rw.status
	if !rw.wrote {
		x.Status = 499 // the client went away before any response (nginx's convention)
	}
	x.BytesOut = rw.bytes
	if x.Slot != nil {
		x.Slot.Release(x)
	}
	g.inFlight.Add(-1)
	g.recorder.Record(x, time.Now())
	x.Reset()
	exchanges.Put(x)
}

// stop records a gateway-made decision and writes it as a problem.
func (g *Gateway) stop(w http.ResponseWriter, x *pipeline.Exchange, d pipeline.Decision) {
	d.Stage = "guard"
	d.Action = pipeline.Stop
	d.Enforced = true
	x.Record(d)
	pipeline.WriteDecision(w, &d, x.RequestID)
}

func bodyTooLarge() pipeline.Decision {
	return pipeline.Decision{Status: http.StatusRequestEntityTooLarge, Reason: "body_too_large",
		Detail: "The request body exceeds the size this gateway accepts.", Headers: http.Header{"Connection": {"close"}}}
}

// headerBytes approximates the size of the request line and headers as
// sent, the quantity limits.max_header_bytes bounds.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4 + len(r.Host) + 8
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// bodyReader counts the request body and enforces max_body_bytes for bodies
// without a Content-Length (chunked) as they stream to the upstream.
type bodyReader struct {
	rc       io.ReadCloser
	x        *pipeline.Exchange
	max      int64
	tooLarge bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.tooLarge {
		return 0, &http.MaxBytesError{Limit: b.max}
	}
	if b.max > 0 {
		if rem := b.max - b.x.BytesIn + 1; int64(len(p)) > rem {
			p = p[:rem]
		}
	}
	n, err := b.rc.Read(p)
	b.x.BytesIn += int64(n)
	if b.max > 0 && b.x.BytesIn > b.max {
		b.tooLarge = true
		b.x.BytesIn = b.max
		return 0, &http.MaxBytesError{Limit: b.max}
	}
	return n, err
}

func (b *bodyReader) Close() error { return b.rc.Close() }

// upstreamError renders a failure to reach the upstream (or a body that
// grew too large on the way) as problem+json. The client never sees the
// underlying error; the log does, with the request id.
func (g *Gateway) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	x := pipeline.FromContext(r.Context())
	reqID := ""
	if x != nil {
		reqID = x.RequestID
	}
	var d pipeline.Decision
	var mbe *http.MaxBytesError
	var stop *responseStop
	switch {
	case errors.As(err, &stop):
		d = stop.d
		pipeline.WriteDecision(w, &d, reqID)
		return
	case errors.As(err, &mbe):
		g.metrics.ConnRejected.WithLabelValues("body_too_large").Inc()
		d = bodyTooLarge()
	case errors.Is(err, upstream.ErrCircuitOpen):
		d = pipeline.Decision{Status: http.StatusServiceUnavailable, Reason: "upstream_circuit_open",
			Detail:  "The upstream service is failing; the gateway is holding requests back.",
			Headers: http.Header{"Retry-After": {strconv.Itoa(g.breakerRetryAfter(x))}}}
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		d = pipeline.Decision{Status: 499, Reason: "client_closed"}
	case isTimeout(err):
		d = pipeline.Decision{Status: http.StatusGatewayTimeout, Reason: "upstream_timeout",
			Detail: "The upstream service did not answer in time."}
	default:
		d = pipeline.Decision{Status: http.StatusBadGateway, Reason: "upstream_unavailable",
			Detail: "The upstream service could not be reached."}
	}
	d.Stage = "upstream"
	d.Action = pipeline.Stop
	d.Enforced = true
	api := ""
	if x != nil {
		x.Record(d)
		api = x.API
	}
	if d.Status != 499 && d.Status != http.StatusRequestEntityTooLarge {
		g.logger.Warn("upstream request failed", "request_id", reqID, "api", api, "reason", d.Reason, "error", err.Error())
	}
	if d.Status == 499 {
		return
	}
	pipeline.WriteDecision(w, &d, reqID)
}

func (g *Gateway) breakerRetryAfter(x *pipeline.Exchange) int {
	if x == nil {
		return 1
	}
	snap := g.snap.Load()
	for _, a := range snap.cfg.APIs {
		if a.Name == x.API && a.Upstream.CircuitBreaker != nil {
			if s := int(a.Upstream.CircuitBreaker.Cooldown.D() / time.Second); s > 0 {
				return s
			}
		}
	}
	return 1
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// responseStop carries a response stage's Stop to the error handler.
type responseStop struct{ d pipeline.Decision }

func (e *responseStop) Error() string { return "response stopped by " + e.d.Stage + ": " + e.d.Reason }

// modifyResponse runs the response stages of the exchange's pipeline.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	x := pipeline.FromContext(resp.Request.Context())
	if x == nil || x.Pipeline == nil || !x.Pipeline.HasResponseStages() {
		return nil
	}
	if d := x.Pipeline.RunResponse(resp.Request.Context(), x, resp); d != nil {
		return &responseStop{d: *d}
	}
	return nil
}

// responseWriter records the status and size of the response.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *responseWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.status = code
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.status = http.StatusOK
		w.wrote = true
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush, Hijack and deadlines.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher for code that type-asserts it.
func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack implements http.Hijacker (protocol upgrades through the proxy).
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}
