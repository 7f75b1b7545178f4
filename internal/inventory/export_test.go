package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

// exportTraffic adds sampled bodies and odd templates to the bank traffic.
func exportTraffic() []event.Exchange {
	evs := bankTraffic()
	evs = append(evs,
		ex(40, "POST", "/api/v1/accounts", func(e *event.Exchange) {
			e.Status = 201
			e.RequestSchema = map[string]any{"type": "object", "properties": map[string]any{
				"name":  map[string]any{"type": "string"},
				"limit": map[string]any{"type": []any{"integer", "null"}},
				"tags":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			}}
			e.ResponseSchema = map[string]any{"type": "object", "properties": map[string]any{
				"id":      map[string]any{"type": "string", "format": "uuid"},
				"created": map[string]any{"type": "string", "format": "weird"},
				"nothing": map[string]any{"type": "null"},
			}}
		}),
		ex(41, "GET", "/api/v1/accounts/acc_8f3a29c1d7e4", func(e *event.Exchange) {
			e.Status, e.ResponseSchema = 500, map[string]any{"type": "object"}
		}),
		ex(42, "GET", "/api/v1/weird/%7Bx%7D/a{b", func(e *event.Exchange) { e.Status = 0 }),
		ex(43, "PROPFIND", "/api/v1/files/42"),
		ex(44, "GET", "/api/v1/search", withParams(
			event.Param{Name: "q", In: "query", Type: "string"},
			event.Param{Name: "ids", In: "query", Type: "array"},
			event.Param{Name: "page", In: "query", Type: "integer"},
		)),
	)
	return evs
}

func TestOpenAPIExport(t *testing.T) {
	inv := newBank(t)
	inv.Ingest(exportTraffic())
	ctx := context.Background()
	for _, f := range []Format{FormatJSON, FormatYAML} {
		data, err := inv.ExportOpenAPI(ExportOptions{Title: "bank (inferred)", Format: f})
		if err != nil {
			t.Fatal(err)
		}
		// Valid as written (3.1), and with the version set to 3.0.3: the
		// structure keeps to what both versions accept.
		for _, version := range []string{"", "3.0.3"} {
			doc := data
			if version != "" {
				doc = bytes.Replace(data, []byte(exportOpenAPIVersion), []byte(version), 1)
			}
			loaded, err := openapi3.NewLoader().LoadFromData(doc)
			if err != nil {
				t.Fatalf("%s %s: load: %v\n%s", f, version, err, doc)
			}
			if err := loaded.Validate(ctx); err != nil {
				t.Fatalf("%s %s: validate: %v\n%s", f, version, err, doc)
			}
		}
		// The project's own loader reads it and routes real paths.
		sdoc, err := spec.LoadData(ctx, data, "")
		if err != nil {
			t.Fatalf("%s: spec.LoadData: %v", f, err)
		}
		r, err := spec.NewRouter(sdoc)
		if err != nil {
			t.Fatal(err)
		}
		if m := r.Match("GET", "/api/v1/accounts/acc_1234567", nil); m.Status != spec.Matched || m.Op.Path != "/api/v1/accounts/{AccountId}" {
			t.Errorf("%s: exported spec routes to %v %v", f, m.Status, m.Op)
		}
		if f != FormatJSON {
			continue
		}
		var raw map[string]any
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		paths := raw["paths"].(map[string]any)
		post := paths["/api/v1/accounts"].(map[string]any)["post"].(map[string]any)
		body := post["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
		if p := body["properties"].(map[string]any); p["limit"].(map[string]any)["type"] != "integer" || p["tags"] == nil {
			t.Errorf("request schema %v", body)
		}
		resp := post["responses"].(map[string]any)["201"].(map[string]any)
		rs := resp["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)["properties"].(map[string]any)
		if rs["id"].(map[string]any)["format"] != "uuid" || rs["created"].(map[string]any)["format"] != nil || len(rs["nothing"].(map[string]any)) != 0 {
			t.Errorf("response schema %v", rs)
		}
		search := paths["/api/v1/search/{searchId}"]
		if search != nil {
			t.Errorf("search templated as a parameter: %v", search)
		}
		q := paths["/api/v1/search"].(map[string]any)["get"].(map[string]any)["parameters"].([]any)
		if len(q) != 3 {
			t.Errorf("query parameters %v", q)
		}
		if _, ok := paths["/api/v1/accounts/{AccountId}"].(map[string]any)["delete"]; !ok {
			t.Error("shadow DELETE not exported")
		}
		skipped := raw["info"].(map[string]any)[extensionKey+"-skipped"]
		if s, _ := skipped.([]any); len(s) != 2 {
			t.Errorf("skipped %v, want the brace template and PROPFIND", skipped)
		}
	}
	if _, err := inv.ExportOpenAPI(ExportOptions{Format: "xml"}); err == nil {
		t.Error("unknown format accepted")
	}
	one, err := inv.ExportOpenAPI(ExportOptions{API: "nope"})
	if err != nil || !strings.Contains(string(one), `"paths": {}`) {
		t.Errorf("export of an unknown API: %v %s", err, one)
	}
}

// TestOpenAPIExportLearned exports what was learned from the shared specs'
// traffic alone, and checks it is valid and has the spec's shape.
func TestOpenAPIExportLearned(t *testing.T) {
	for _, file := range sharedSpecs(t) {
		doc := loadShared(t, file)
		inv, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		var evs []event.Exchange
		for _, r := range generateTraffic(doc, trafficSeed) {
			evs = append(evs, event.Exchange{Method: r.method, Path: r.path, Status: 200})
		}
		inv.Ingest(evs)
		data, err := inv.OpenAPI(doc.Title + " (inferred)")
		if err != nil {
			t.Fatal(err)
		}
		loaded, err := openapi3.NewLoader().LoadFromData(data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := loaded.Validate(context.Background()); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if got, want := loaded.Paths.Len(), len(pathsOf(doc)); got != want {
			t.Errorf("%s: %d exported paths, spec has %d", file, got, want)
		}
	}
}

func pathsOf(doc *spec.Document) map[string]bool {
	out := map[string]bool{}
	for _, op := range doc.Operations {
		out[op.Path] = true
	}
	return out
}
