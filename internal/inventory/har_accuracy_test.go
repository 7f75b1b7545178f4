package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/inventory/importer"
)

// harFor renders generated traffic as a HAR 1.2 document, as a browser or
// a proxy would record it.
func harFor(traffic []request) []byte {
	type nv struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	entries := make([]map[string]any, 0, len(traffic))
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for i, r := range traffic {
		entries = append(entries, map[string]any{
			"startedDateTime": t0.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano),
			"time":            12.5,
			"request": map[string]any{
				"method": r.method, "url": "https://api.bank.example" + r.path, "httpVersion": "HTTP/1.1",
				"headers": []nv{{"Accept", "application/json"}}, "queryString": []nv{}, "headersSize": -1, "bodySize": 0,
			},
			"response": map[string]any{
				"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": []nv{},
				"content": map[string]any{"size": 2, "mimeType": "application/json", "text": "{}"}, "redirectURL": "", "headersSize": -1, "bodySize": 2,
			},
			"cache": map[string]any{}, "timings": map[string]any{"send": 0, "wait": 12.5, "receive": 0},
		})
	}
	b, _ := json.Marshal(map[string]any{"log": map[string]any{
		"version": "1.2", "creator": map[string]any{"name": "bulwark-test", "version": "1"}, "entries": entries,
	}})
	return b
}

// TestAccuracyThroughHARAndExport is the acceptance path of issue #7 end
// to end: for every shared spec, traffic with concrete values becomes a
// HAR file, is imported through the importer, learned by an inventory
// that was not given the spec, exported as OpenAPI, and the exported
// paths are compared with the spec's.
func TestAccuracyThroughHARAndExport(t *testing.T) {
	for _, file := range sharedSpecs(t) {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			doc := loadShared(t, file)
			traffic := generateTraffic(doc, trafficSeed)
			var events []event.Exchange
			st, err := importer.Import(context.Background(), bytes.NewReader(harFor(traffic)), importer.Options{Format: importer.FormatHAR},
				func(e event.Exchange) error { events = append(events, e); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if st.Imported != len(traffic) {
				t.Fatalf("imported %d of %d HAR entries: %v", st.Imported, len(traffic), st.Errors)
			}
			inv, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			for start := 0; start < len(events); start += 512 {
				inv.Ingest(events[start:min(start+512, len(events))])
			}
			out, err := inv.ExportOpenAPI(ExportOptions{Title: name, Format: FormatJSON})
			if err != nil {
				t.Fatal(err)
			}
			var exported struct {
				OpenAPI string                    `json:"openapi"`
				Paths   map[string]map[string]any `json:"paths"`
			}
			if err := json.Unmarshal(out, &exported); err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for _, op := range doc.Operations {
				want[shape(doc.BasePaths[0]+op.Path)+" "+op.Method] = true
			}
			learned := map[string]bool{}
			for p, item := range exported.Paths {
				for m := range item {
					switch m {
					case "get", "put", "post", "delete", "patch", "head", "options", "trace":
						learned[shape(p)+" "+upper(m)] = true
					}
				}
			}
			match := 0
			var misses []string
			for l := range learned {
				if want[l] {
					match++
				} else {
					misses = append(misses, "exported, not in spec: "+l)
				}
			}
			recalled := 0
			for w := range want {
				if learned[w] {
					recalled++
				} else {
					misses = append(misses, "in spec, not exported: "+w)
				}
			}
			sort.Strings(misses)
			precision := float64(match) / float64(max(len(learned), 1))
			recall := float64(recalled) / float64(max(len(want), 1))
			t.Logf("%s via HAR import and OpenAPI %s export: %d operations in the spec, %d exported, precision %.3f, recall %.3f",
				name, exported.OpenAPI, len(want), len(learned), precision, recall)
			for _, m := range misses {
				t.Log(m)
			}
			if precision < minAccuracy || recall < minAccuracy {
				t.Fatalf("precision %.3f recall %.3f, want >= %.2f", precision, recall, minAccuracy)
			}
		})
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
