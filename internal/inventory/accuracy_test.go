package inventory

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata from the current output")

const (
	// sharedSpecDir holds the real-world specs shared by the project; it
	// lives outside the repository, so tests that need it skip without it.
	sharedSpecDir = "../../../shared/testdata/specs"
	// accuracyGolden is the accuracy table.
	accuracyGolden = "testdata/accuracy.md"
	// requestsPerOp: every operation is called this often. With
	// valuesPerParam values each value appears twice per operation.
	requestsPerOp = 50
	// valuesPerParam distinct concrete values per path parameter (the
	// criterion asks for at least 20).
	valuesPerParam = 25
	// minAccuracy is the acceptance threshold for learning from traffic.
	minAccuracy = 0.95
	// trafficSeed makes the generated traffic reproducible.
	trafficSeed = 20260128
)

// remoteStubs maps remote $ref documents of the shared specs to local
// stand-ins: spec.Load refuses remote refs.
func remoteStubs() map[string]string {
	return map[string]string{
		"https://raw.githubusercontent.com/moov-io/base/master/api/common.yaml": "testdata/stubs/moov-base-common.yaml",
	}
}

// sharedSpecs lists the shared spec files, skipping when the folder is
// absent.
func sharedSpecs(t testing.TB) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(sharedSpecDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range all {
		switch strings.ToLower(filepath.Ext(f)) {
		case ".yaml", ".yml", ".json":
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		t.Skipf("no shared specs in %s (they live outside the repository, beside it in ../shared); skipping", sharedSpecDir)
	}
	sort.Strings(files)
	return files
}

// loadShared loads a shared spec, rewriting remote refs to local stubs
// when it is refused for one.
func loadShared(t testing.TB, file string) *spec.Document {
	t.Helper()
	doc, err := spec.Load(context.Background(), file)
	if err == nil {
		return doc
	}
	var rre *spec.RemoteRefError
	if !errors.As(err, &rre) {
		t.Fatalf("load %s: %v", file, err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for remote, local := range remoteStubs() {
		abs, err := filepath.Abs(local)
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.ReplaceAll(data, []byte(remote), []byte(filepath.ToSlash(abs)))
	}
	doc, err = spec.LoadData(context.Background(), data, file)
	if err != nil {
		t.Fatalf("load %s with local stubs: %v", file, err)
	}
	return doc
}

// request is one generated call.
type request struct{ method, path string }

// idStyle is how a parameter's values are spelled.
type idStyle int

const (
	styleInteger idStyle = iota
	styleUUID
	stylePrefixed
	styleHex
	styleCount // number of styles, for mixing
)

// paramSchema finds the schema of path parameter name of op.
func pathParamSchema(op *spec.Operation, name string) *openapi3.Schema {
	for _, ps := range []openapi3.Parameters{op.Op.Parameters, pathItemParams(op)} {
		if p := ps.GetByInAndName(openapi3.ParameterInPath, name); p != nil && p.Schema != nil {
			return p.Schema.Value
		}
	}
	return nil
}

func pathItemParams(op *spec.Operation) openapi3.Parameters {
	if op.PathItem == nil {
		return nil
	}
	return op.PathItem.Parameters
}

// valuePool returns valuesPerParam distinct values for a parameter: in
// the schema's style when it says uuid or integer, else mixed styles.
func valuePool(rng *rand.Rand, name string, schema *openapi3.Schema) []string {
	fixed := idStyle(-1)
	if schema != nil {
		switch {
		case schema.Format == "uuid":
			fixed = styleUUID
		case schema.Type != nil && schema.Type.Includes("integer"):
			fixed = styleInteger
		}
	}
	prefix := strings.ToLower(name)
	if len(prefix) > 3 {
		prefix = prefix[:3]
	}
	seen := map[string]bool{}
	var out []string
	for k := 0; len(out) < valuesPerParam; k++ {
		style := fixed
		if style < 0 {
			style = idStyle(k) % styleCount
		}
		var v string
		switch style {
		case styleInteger:
			v = fmt.Sprint(1 + rng.IntN(10_000_000))
		case styleUUID:
			v = fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12),
				0x8000|rng.IntN(1<<14), rng.Uint64()&(1<<48-1))
		case stylePrefixed:
			const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			b := []byte(prefix + "_")
			for range 14 {
				b = append(b, alnum[rng.IntN(len(alnum))])
			}
			v = string(b)
		case styleHex:
			v = fmt.Sprintf("%016x", rng.Uint64())
		}
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// generateTraffic calls every operation requestsPerOp times with concrete
// values, under the spec's first base path, in a shuffled order.
func generateTraffic(doc *spec.Document, seed uint64) []request {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	base := doc.BasePaths[0]
	pools := map[string][]string{} // by parameter name: APIs reuse ids across endpoints
	var out []request
	for _, op := range doc.Operations {
		segs := strings.Split(base+op.Path, "/")
		perms := map[string][]int{}
		for _, name := range op.PathParams {
			if pools[name] == nil {
				pools[name] = valuePool(rng, name, pathParamSchema(op, name))
			}
			perms[name] = rng.Perm(valuesPerParam)
		}
		for i := range requestsPerOp {
			concrete := make([]string, len(segs))
			for j, seg := range segs {
				concrete[j] = seg
				if !strings.Contains(seg, "{") {
					continue
				}
				_, names, err := splitTemplateSegment(seg)
				if err != nil {
					continue
				}
				for _, n := range names {
					v := pools[n][perms[n][i%valuesPerParam]]
					concrete[j] = strings.Replace(concrete[j], "{"+n+"}", v, 1)
				}
			}
			out = append(out, request{op.Method, strings.Join(concrete, "/")})
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// shape normalises a template for comparison: parameter names dropped,
// one trailing slash dropped.
func shape(tmpl string) string { return templateShape(trimTrailingSlash(tmpl)) }

// accuracyRow is one line of the table.
type accuracyRow struct {
	spec, mode                 string
	specPaths, learned, match  int
	precision, recall          float64
	requests, concrete, misses int
}

// measure compares the templates tp gives the traffic with the spec.
func measure(doc *spec.Document, traffic []request, tp *Templater) (accuracyRow, []string) {
	want := map[string]bool{}
	for _, op := range doc.Operations {
		want[shape(doc.BasePaths[0]+op.Path)] = true
	}
	learned := map[string]bool{}
	concrete := map[string]bool{}
	for _, r := range traffic {
		if concrete[r.path] {
			continue
		}
		concrete[r.path] = true
		tmpl, _ := tp.Template(cleanPath(r.path))
		learned[shape(tmpl)] = true
	}
	row := accuracyRow{specPaths: len(want), learned: len(learned), requests: len(traffic), concrete: len(concrete)}
	var misses []string
	for l := range learned {
		if want[l] {
			row.match++
		} else {
			misses = append(misses, "learned, not in spec: "+l)
		}
	}
	recalled := 0
	for w := range want {
		if learned[w] {
			recalled++
		} else {
			misses = append(misses, "in spec, not learned: "+w)
		}
	}
	sort.Strings(misses)
	row.misses = len(misses)
	row.precision = float64(row.match) / float64(max(row.learned, 1))
	row.recall = float64(recalled) / float64(max(row.specPaths, 1))
	return row, misses
}

func TestAccuracy(t *testing.T) {
	var rows []accuracyRow
	for _, file := range sharedSpecs(t) {
		name := filepath.Base(file)
		doc := loadShared(t, file)
		traffic := generateTraffic(doc, trafficSeed)

		learnedTp := NewTemplater(TemplaterOptions{})
		for _, r := range traffic {
			learnedTp.Observe(r.method, cleanPath(r.path))
		}
		row, misses := measure(doc, traffic, learnedTp)
		row.spec, row.mode = name, "traffic only"
		rows = append(rows, row)
		for _, m := range misses {
			t.Logf("%s: %s", name, m)
		}
		if row.precision < minAccuracy || row.recall < minAccuracy {
			t.Errorf("%s learned from traffic: precision %.3f recall %.3f, want >= %.2f", name, row.precision, row.recall, minAccuracy)
		}

		// The inventory, fed the same traffic as events, ends with the
		// same templates.
		inv, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		events := make([]event.Exchange, len(traffic))
		for i, r := range traffic {
			events[i] = event.Exchange{Method: r.method, Path: r.path, Status: 200}
		}
		for start := 0; start < len(events); start += 256 {
			inv.Ingest(events[start:min(start+256, len(events))])
		}
		got := map[string]bool{}
		for _, ep := range inv.Endpoints() {
			got[shape(ep.Template)] = true
		}
		wantShapes := map[string]bool{}
		for _, r := range traffic {
			tmpl, _ := learnedTp.Template(cleanPath(r.path))
			wantShapes[shape(tmpl)] = true
		}
		if fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(wantShapes)) {
			t.Errorf("%s: inventory templates %q, templater %q", name, sortedKeys(got), sortedKeys(wantShapes))
		}

		specTp := NewTemplater(TemplaterOptions{})
		specTp.AddSpec(doc)
		for _, r := range traffic {
			specTp.Observe(r.method, cleanPath(r.path))
		}
		row, misses = measure(doc, traffic, specTp)
		row.spec, row.mode = name, "spec given"
		rows = append(rows, row)
		if row.precision != 1 || row.recall != 1 {
			t.Errorf("%s with the spec: precision %.3f recall %.3f, want 1; %q", name, row.precision, row.recall, misses)
		}
	}
	table := renderAccuracy(rows)
	t.Log("\n" + table)
	if *update {
		if err := os.WriteFile(accuracyGolden, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	golden, err := os.ReadFile(accuracyGolden)
	if err != nil {
		t.Fatalf("read golden (run go test -run TestAccuracy -update to create it): %v", err)
	}
	if string(golden) != table {
		t.Errorf("accuracy table differs from %s (run with -update if the change is intended):\n%s", accuracyGolden, table)
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func renderAccuracy(rows []accuracyRow) string {
	var b strings.Builder
	b.WriteString("# Path templating accuracy\n\n")
	b.WriteString("Generated by `go test ./internal/inventory -run TestAccuracy -update`.\n")
	fmt.Fprintf(&b, "Every operation of each shared spec is called %d times with %d distinct values per path\n", requestsPerOp, valuesPerParam)
	b.WriteString("parameter (integers, UUIDs, prefixed ids and hex mixed; the schema's style for uuid and\n")
	b.WriteString("integer parameters), in shuffled order. \"traffic only\": a Templater that never saw the\n")
	b.WriteString("spec; \"spec given\": the spec added with AddSpec. Templates are compared by structure\n")
	b.WriteString("(parameter names ignored). Precision: learned templates that are spec paths / learned\n")
	b.WriteString("templates. Recall: spec paths learned / spec paths (all have traffic).\n\n")
	b.WriteString("| spec | mode | requests | distinct paths | spec paths | learned | matched | precision | recall |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %.3f | %.3f |\n",
			r.spec, r.mode, r.requests, r.concrete, r.specPaths, r.learned, r.match, r.precision, r.recall)
	}
	return b.String()
}
