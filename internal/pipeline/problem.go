package pipeline

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// ProblemTypeBase prefixes every problem type URI the gateway emits. The
// types are stable identifiers that clients may branch on (RFC 9457 §3.1.1).
const ProblemTypeBase = "https://bulwark.dev/problems/"

// ContentTypeProblem is the media type of RFC 9457 problem details.
const ContentTypeProblem = "application/problem+json"

// Problem is an RFC 9457 problem details object. Every response the gateway
// itself makes uses it; it never carries upstream internals, stack traces or
// echoes of request data.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id"`
	// Reason is the machine-readable reason of the decision that produced
	// the problem (for example "body_too_large").
	Reason string `json:"reason,omitempty"`
}

// NewProblem builds a problem for status with a reason slug used for the type URI.
func NewProblem(status int, reason, detail, requestID string) Problem {
	slug := reason
	if slug == "" {
		slug = "http-" + strconv.Itoa(status)
	}
	return Problem{
		Type:      ProblemTypeBase + slug,
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		RequestID: requestID,
		Reason:    reason,
	}
}

// WriteProblem writes p to w with the right headers. extra headers (for
// example Retry-After) are added first. Caching is forbidden: a problem is
// about one request.
func WriteProblem(w http.ResponseWriter, p Problem, extra http.Header) {
	h := w.Header()
	for k, v := range extra {
		h[k] = v
	}
	h.Set("Content-Type", ContentTypeProblem)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	body, err := json.Marshal(p)
	if err != nil { // unreachable: Problem has only strings and ints
		body = []byte(`{"type":"about:blank","status":500}`)
	}
	body = append(body, '\n')
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// WriteDecision renders a Stop decision as a problem.
func WriteDecision(w http.ResponseWriter, d *Decision, requestID string) {
	WriteProblem(w, NewProblem(d.Status, d.Reason, d.Detail, requestID), d.Headers)
}
