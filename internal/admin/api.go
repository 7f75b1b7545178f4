package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/bulwarkapi/bulwark/internal/finding"
	"github.com/bulwarkapi/bulwark/internal/inventory"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/store"
)

// Data is what the admin API reads: the live inventory and the stored
// findings. Either may be nil (the inventory is disabled).
type Data struct {
	// Inventory returns the live inventory; a nil func means the
	// inventory is disabled, a nil result that it is not available yet
	// (its store did not open).
	Inventory func() *inventory.Inventory
	Findings  func(ctx context.Context, f store.FindingFilter) ([]finding.Finding, error)
}

// maxFindings bounds one findings response; ?limit= asks for fewer.
const maxFindings = 1000

// sensitiveClasses are the data classes that make an endpoint "sensitive"
// for the inventory filter: payment and identity data, secrets.
var sensitiveClasses = []string{"pan", "iban", "us_ssn", "uk_nino", "aba_routing", "private_key", "cloud_key", "jwt"}

func (o Options) mountAPI(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/inventory", o.authorize(http.HandlerFunc(o.listInventory)))
	mux.Handle("GET /api/v1/inventory/{id}", o.authorize(http.HandlerFunc(o.getEndpoint)))
	mux.Handle("GET /api/v1/findings", o.authorize(http.HandlerFunc(o.listFindings)))
}

// summary drops the sketches behind an endpoint's figures: they are for
// persistence, not for readers.
func summary(ep inventory.Endpoint) inventory.Endpoint {
	ep.Latency.Buckets = nil
	ep.Identities.Hashes = nil
	ep.Identities.Sketch = nil
	return ep
}

// EndpointMatches applies the inventory filters of the admin API and the
// dashboard: api, status (documented, shadow, zombie, unspecified),
// sensitive, unauthenticated, exposure.
func EndpointMatches(ep inventory.Endpoint, q map[string]string) bool {
	if v := q["api"]; v != "" && ep.API != v {
		return false
	}
	if v := q["status"]; v != "" && ep.SpecStatus != v {
		return false
	}
	if q["sensitive"] == "true" && !slices.ContainsFunc(ep.ResponseClasses, func(c string) bool { return slices.Contains(sensitiveClasses, c) }) {
		return false
	}
	if q["unauthenticated"] == "true" && ep.Unauthenticated == 0 {
		return false
	}
	if v := q["exposure"]; v != "" && ep.Exposure != v {
		return false
	}
	return true
}

// inventory returns the live inventory, or answers why there is none.
func (o Options) inventory(w http.ResponseWriter) *inventory.Inventory {
	if o.Data.Inventory == nil {
		o.problem(w, http.StatusNotFound, "inventory_disabled", "The inventory is disabled in this configuration.")
		return nil
	}
	inv := o.Data.Inventory()
	if inv == nil {
		w.Header().Set("Retry-After", "5")
		o.problem(w, http.StatusServiceUnavailable, "store_unavailable", "The inventory's store has not opened yet; retry shortly.")
	}
	return inv
}

func (o Options) listInventory(w http.ResponseWriter, r *http.Request) {
	inv := o.inventory(w)
	if inv == nil {
		return
	}
	q := map[string]string{}
	for _, k := range []string{"api", "status", "sensitive", "unauthenticated", "exposure"} {
		q[k] = r.URL.Query().Get(k)
	}
	out := []inventory.Endpoint{}
	for _, ep := range inv.Endpoints() {
		if EndpointMatches(ep, q) {
			out = append(out, summary(ep))
		}
	}
	writeValue(w, map[string]any{"endpoints": out, "count": len(out)})
}

func (o Options) getEndpoint(w http.ResponseWriter, r *http.Request) {
	inv := o.inventory(w)
	if inv == nil {
		return
	}
	ep, ok := inv.Endpoint(r.PathValue("id"))
	if !ok {
		o.problem(w, http.StatusNotFound, "not_found", "No endpoint with this id.")
		return
	}
	writeValue(w, summary(ep))
}

func (o Options) listFindings(w http.ResponseWriter, r *http.Request) {
	if o.Data.Findings == nil {
		o.problem(w, http.StatusNotFound, "inventory_disabled", "Findings are not kept in this configuration.")
		return
	}
	q := r.URL.Query()
	f := store.FindingFilter{Kind: q.Get("kind"), Limit: maxFindings}
	if s := q.Get("severity"); s != "" {
		sev, ok := finding.ParseSeverity(s)
		if !ok {
			o.problem(w, http.StatusBadRequest, "bad_parameter", "severity must be info, low, medium, high or critical.")
			return
		}
		f.MinSeverity = sev
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			o.problem(w, http.StatusBadRequest, "bad_parameter", "limit must be a positive number.")
			return
		}
		f.Limit = min(n, maxFindings)
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			o.problem(w, http.StatusBadRequest, "bad_parameter", "since must be an RFC 3339 time.")
			return
		}
		f.Since = t
	}
	fs, err := o.Data.Findings(r.Context(), f)
	if err != nil {
		o.problem(w, http.StatusServiceUnavailable, "store_unavailable", "The findings store did not answer; retry shortly.")
		return
	}
	if fs == nil {
		fs = []finding.Finding{}
	}
	writeValue(w, map[string]any{"findings": fs, "count": len(fs)})
}

func (o Options) problem(w http.ResponseWriter, status int, reason, detail string) {
	pipeline.WriteProblem(w, pipeline.NewProblem(status, reason, detail, o.id()), nil)
}

func writeValue(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
