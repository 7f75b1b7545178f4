// Package observe is what the inventory and the detectors learn from
// bodies, on the request goroutine and within bounds: the type-only shape
// of JSON request and response bodies, sampled per endpoint (the schemas
// of `bulwark inventory export`), and the hashes of the object ids a
// successful JSON response returned to an authenticated caller (ownership
// learning: an id first returned to one caller and later requested by
// another). It never stops an exchange and keeps no value: only types,
// names and hashes travel on in the exchange event.
package observe

import (
	"context"
	"hash/maphash"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/bulwarkapi/bulwark/internal/inventory/shape"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// StageName is the name of the stage in metrics.
const StageName = "observe"

// MaxResponseBytes bounds the response bodies observed: a larger body, or
// one of unknown length that no other stage read, streams on untouched.
const MaxResponseBytes = 1 << 20

// Options says what the stage observes.
type Options struct {
	// Schemas samples body shapes; the Sampler says which exchanges.
	Schemas bool
	// ReturnedIDs reads the ids of every 2xx JSON response to an
	// authenticated caller.
	ReturnedIDs bool
	// MaxRequestBytes bounds the request bodies read for a sample
	// (limits.max_body_bytes).
	MaxRequestBytes int64
	// Hash hashes an id; it must be the hash of the exchange's ObjectIDs
	// (policy.HashID) so that returned and requested ids compare.
	Hash func(string) string
}

// Stage is both a request stage (it decides the sample and reads a
// sampled request body) and a response stage. Safe for concurrent use.
type Stage struct {
	o       Options
	sampler *Sampler
}

var (
	_ pipeline.Stage         = (*Stage)(nil)
	_ pipeline.ResponseStage = (*Stage)(nil)
)

// New returns the stage. The sampler outlives configuration reloads, so
// that a reload does not sample every endpoint again.
func New(o Options, s *Sampler) *Stage { return &Stage{o: o, sampler: s} }

// Name implements pipeline.Stage and pipeline.ResponseStage.
func (s *Stage) Name() string { return StageName }

// Handle implements pipeline.Stage: it runs after every check, so only
// requests the gateway lets through teach the inventory a shape.
func (s *Stage) Handle(_ context.Context, x *pipeline.Exchange) pipeline.Decision {
	if !s.o.Schemas || !s.sampler.Sample(x) {
		return pipeline.Continue
	}
	x.SampleBodies = true
	r := x.Request
	body, read := x.ReadRequestBody()
	if !read {
		// Read it only when its length is known and within the limit: a
		// body the gateway would refuse is the upstream read's to refuse.
		if r.ContentLength <= 0 || (s.o.MaxRequestBytes > 0 && r.ContentLength > s.o.MaxRequestBytes) || !isJSON(r.Header.Get("Content-Type")) {
			return pipeline.Continue
		}
		b, err := x.RequestBody()
		if err != nil {
			return pipeline.Continue // the upstream read fails the same way
		}
		body = b
	}
	if len(body) > 0 && isJSON(r.Header.Get("Content-Type")) {
		x.RequestSchema, x.BodyParams = shape.Infer(body)
	}
	return pipeline.Continue
}

// HandleResponse implements pipeline.ResponseStage.
func (s *Stage) HandleResponse(_ context.Context, x *pipeline.Exchange, resp *http.Response) pipeline.Decision {
	ids := s.o.ReturnedIDs && x.Identity != nil && s.o.Hash != nil
	if !ids && !x.SampleBodies {
		return pipeline.Continue
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 || !isJSON(resp.Header.Get("Content-Type")) {
		return pipeline.Continue
	}
	body, ok := x.InspectedResponseBody()
	if !ok {
		// Only a plain body: reading a compressed one would send it on
		// decoded. A body of unknown length (chunked) is read up to the
		// limit; a longer one streams on after what was read, unobserved.
		if resp.ContentLength == 0 || resp.ContentLength > MaxResponseBytes || !plain(resp.Header.Get("Content-Encoding")) {
			return pipeline.Continue
		}
		b, complete, err := x.ResponseBody(resp, MaxResponseBytes)
		if err != nil || !complete {
			return pipeline.Continue
		}
		body = b
	}
	if len(body) == 0 {
		return pipeline.Continue
	}
	if ids {
		x.ReturnedIDs = shape.IDs(body, s.o.Hash)
	}
	if x.SampleBodies {
		x.ResponseSchema, _ = shape.Infer(body)
	}
	return pipeline.Continue
}

func plain(enc string) bool { return enc == "" || strings.EqualFold(enc, "identity") }

// isJSON reports whether a Content-Type is JSON (application/json,
// application/problem+json, application/vnd.x+json).
func isJSON(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// sampleKey names an endpoint for sampling, as a hash (no allocation on
// the request path): the API and the matched operation, or for unmatched
// paths the method and the path with every segment that holds a digit or
// is long folded, so that ids do not make every request a new endpoint.
func (s *Sampler) sampleKey(x *pipeline.Exchange) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(x.API)
	h.WriteByte(0)
	if x.Operation != "" {
		h.WriteString(x.Operation)
		return h.Sum64()
	}
	h.WriteString(x.Request.Method)
	h.WriteByte(' ')
	first := true
	for seg := range strings.SplitSeq(x.Request.URL.Path, "/") {
		if !first {
			h.WriteByte('/')
		}
		first = false
		if len(seg) > 24 || strings.ContainsAny(seg, "0123456789") {
			h.WriteByte('*')
		} else {
			h.WriteString(seg)
		}
	}
	return h.Sum64()
}

// maxSampleKeys bounds the sampler's memory: past it the counts start
// again (every endpoint gets its first samples anew), which costs a few
// samples and never memory.
const maxSampleKeys = 8192

// Sampler decides which exchanges of an endpoint are sampled: the first
// First, then one in Every. Safe for concurrent use.
type Sampler struct {
	first, every uint64
	seed         maphash.Seed
	mu           sync.Mutex
	seen         map[uint64]uint64
}

// NewSampler returns a sampler; every <= 0 samples only the first.
func NewSampler(first, every int) *Sampler {
	return &Sampler{first: uint64(max(first, 0)), every: uint64(max(every, 0)), seed: maphash.MakeSeed(), seen: map[uint64]uint64{}}
}

// Sample counts an exchange of x's endpoint and says whether to sample it.
func (s *Sampler) Sample(x *pipeline.Exchange) bool { return s.count(s.sampleKey(x)) }

func (s *Sampler) count(key uint64) bool {
	s.mu.Lock()
	n, ok := s.seen[key]
	if !ok && len(s.seen) >= maxSampleKeys {
		clear(s.seen)
	}
	s.seen[key] = n + 1
	s.mu.Unlock()
	if n < s.first {
		return true
	}
	return s.every > 0 && (n-s.first)%s.every == s.every-1
}
