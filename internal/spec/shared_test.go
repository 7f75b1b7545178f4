package spec

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden from the current output")

// sharedSpecDir holds the real-world specs shared by the project; it lives
// outside the repository, so tests that need it skip when it is absent.
const sharedSpecDir = "../../../shared/testdata/specs"

// remoteStubs maps remote $ref documents used by real-world specs to local
// stand-ins under testdata/stubs. Load refuses remote refs; the tests check
// that, then load the spec with the refs rewritten to the stand-ins.
func remoteStubs() map[string]string {
	return map[string]string{
		"https://raw.githubusercontent.com/moov-io/base/master/api/common.yaml": "testdata/stubs/moov-base-common.yaml",
	}
}

// sharedSpecs lists the shared spec files, skipping the test when the
// folder is absent.
func sharedSpecs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(sharedSpecDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join(sharedSpecDir, "*.json"))
	files = append(files, more...)
	if len(files) == 0 {
		t.Skipf("shared specs not found in %s (they live outside the repository); skipping", sharedSpecDir)
	}
	sort.Strings(files)
	return files
}

// loadShared loads a shared spec. When it is refused for a remote $ref, the
// refusal is checked and the spec is loaded again with the refs rewritten to
// local stand-ins.
func loadShared(t *testing.T, file string) *Document {
	t.Helper()
	doc, err := Load(context.Background(), file)
	if err == nil {
		return doc
	}
	var rre *RemoteRefError
	if !errors.As(err, &rre) {
		t.Fatalf("Load(%s): %v", file, err)
	}
	stub, ok := remoteStubs()[rre.URI]
	if !ok {
		t.Fatalf("Load(%s) refused remote ref %s with no local stand-in: %v", file, rre.URI, err)
	}
	t.Logf("%s: remote $ref refused as expected (%v); loading with %s", filepath.Base(file), err, stub)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for remote, local := range remoteStubs() {
		if l, err := filepath.Abs(local); err == nil {
			data = bytes.ReplaceAll(data, []byte(remote), []byte(filepath.ToSlash(l)))
		}
	}
	doc, err = LoadData(context.Background(), data, file)
	if err != nil {
		t.Fatalf("LoadData(%s) with stand-ins: %v", file, err)
	}
	return doc
}

// pathParam finds the declaration of path parameter name (operation level
// overrides path-item level).
func pathParam(op *Operation, name string) *openapi3.Parameter {
	if p := op.Op.Parameters.GetByInAndName(openapi3.ParameterInPath, name); p != nil {
		return p
	}
	if op.PathItem != nil {
		return op.PathItem.Parameters.GetByInAndName(openapi3.ParameterInPath, name)
	}
	return nil
}

// sampleValue returns a real-looking value for the i-th path parameter,
// chosen by its schema (enum, format, type, pattern, length) and name.
func sampleValue(t *testing.T, op *Operation, name string, i int) string {
	t.Helper()
	// Each position gets a different tail, so a swapped value order is caught.
	tails := []string{"8f3a29c1d7e40b5a", "41c07be2a9d3f618", "b2e9d04f7a1c6e35", "0d5f8a3b2c9e7f14"}
	tail := tails[i%len(tails)]
	uuids := []string{"3f6c1a2e-9b4d-4c8e-a1f2-7d5e6b8c9a01", "c0a8e3b4-5d6f-4e7a-8b9c-0d1e2f3a4b5c"}
	var schema *openapi3.Schema
	var example any
	if p := pathParam(op, name); p != nil {
		example = p.Example
		if p.Schema != nil {
			schema = p.Schema.Value
		}
	}
	var cands []string
	lower := strings.ToLower(name)
	if schema != nil {
		for _, e := range schema.Enum {
			cands = append(cands, fmt.Sprint(e))
		}
		switch schema.Format {
		case "uuid":
			cands = append(cands, uuids[i%len(uuids)])
		case "date":
			cands = append(cands, fmt.Sprintf("2026-0%d-28", i%9+1))
		case "date-time":
			cands = append(cands, fmt.Sprintf("2026-0%d-28T09:30:00Z", i%9+1))
		}
		if schema.Type != nil && (schema.Type.Includes("integer") || schema.Type.Includes("number")) {
			cands = append(cands, fmt.Sprint(40213+i*7919))
		}
		if example == nil {
			example = schema.Example
		}
	}
	prefixes := []struct{ word, prefix string }{
		{"customer", "cus_"}, {"consent", "cns_"}, {"account", "acc_"}, {"statement", "stm_"},
		{"payment", "pmt_"}, {"order", "ord_"}, {"batch", "bat_"}, {"file", "fil_"}, {"card", "crd_"},
	}
	for _, p := range prefixes {
		if strings.Contains(lower, p.word) {
			cands = append(cands, p.prefix+tail)
			break
		}
	}
	if example != nil {
		cands = append(cands, fmt.Sprint(example)+fmt.Sprint(i))
	}
	cands = append(cands, "id_"+tail, uuids[i%len(uuids)], fmt.Sprint(7+i))
	for _, c := range cands {
		if fits(schema, c) {
			return c
		}
	}
	t.Fatalf("%s: no sample value fits parameter %s (candidates %q)", op.Key, name, cands)
	return ""
}

func fits(s *openapi3.Schema, v string) bool {
	if s == nil {
		return true
	}
	n := uint64(utf8.RuneCountInString(v))
	if n < s.MinLength || (s.MaxLength != nil && n > *s.MaxLength) {
		return false
	}
	if s.Pattern != "" {
		if re, err := regexp.Compile(s.Pattern); err == nil && !re.MatchString(v) {
			return false
		}
	}
	return true
}

// concretePath builds a request path for op under base, and the values
// the router must return.
func concretePath(t *testing.T, op *Operation, base string) (string, []string) {
	t.Helper()
	p := op.Path
	var values []string
	for i, name := range op.PathParams {
		v := sampleValue(t, op, name, i)
		values = append(values, v)
		p = strings.Replace(p, "{"+name+"}", url.PathEscape(v), 1)
	}
	return base + p, values
}

// allowedFor is the Allowed list the router must give for template tmpl.
func allowedFor(doc *Document, tmpl string) []string {
	var out []string
	hasGet, hasHead := false, false
	for _, op := range doc.Operations {
		if op.Path == tmpl {
			out = append(out, op.Method)
			hasGet = hasGet || op.Method == "GET"
			hasHead = hasHead || op.Method == "HEAD"
		}
	}
	if hasGet && !hasHead {
		out = append(out, "HEAD")
	}
	sort.Strings(out)
	return out
}

func TestSharedSpecsRouteEveryOperation(t *testing.T) {
	for _, file := range sharedSpecs(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			routeEveryOperation(t, loadShared(t, file))
		})
	}
}

func TestFixturesRouteEveryOperation(t *testing.T) {
	for _, file := range []string{"testdata/router.yaml", "testdata/openapi31.yaml", "testdata/swagger2.yaml", "testdata/multifile/api.yaml"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			routeEveryOperation(t, mustLoad(t, file))
		})
	}
}

// routeEveryOperation builds a concrete request path for every operation
// under every base path and checks the router matches exactly that
// operation with the right values, and that near misses do not.
func routeEveryOperation(t *testing.T, doc *Document) {
	t.Helper()
	if len(doc.Operations) == 0 {
		t.Fatal("no operations")
	}
	r, err := NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]string, 0, 8)
	for _, base := range doc.BasePaths {
		for _, op := range doc.Operations {
			path, want := concretePath(t, op, base)
			m := r.Match(op.Method, path, buf)
			if m.Status != Matched || m.Op != op {
				t.Errorf("%s %s: status %v op %v, want %s", op.Method, path, m.Status, m.Op, op.Key)
				continue
			}
			if len(m.Values) != len(op.PathParams) || (len(want) > 0 && !reflect.DeepEqual(m.Values, want)) {
				t.Errorf("%s %s: values %q, want %q", op.Method, path, m.Values, want)
			}
			// A trailing slash is tolerated.
			if !strings.HasSuffix(path, "/") {
				if m := r.Match(op.Method, path+"/", buf); m.Op != op {
					t.Errorf("%s %s/: op %v, want %s", op.Method, path, m.Op, op.Key)
				}
			}
			// Extra segment: never this operation; if another, one level deeper.
			extra := strings.TrimSuffix(path, "/") + "/zz-extra"
			if m := r.Match(op.Method, extra, buf); m.Op == op ||
				(m.Op != nil && strings.Count(m.Op.Path, "/") != strings.Count(op.Path, "/")+1) {
				t.Errorf("%s %s: matched %v", op.Method, extra, m.Op)
			}
			// Wrong base path.
			if base != "" {
				wrong := base + "x" + path[len(base):]
				if m := r.Match(op.Method, wrong, buf); m.Status != NotFound {
					t.Errorf("%s %s: status %v, want NotFound", op.Method, wrong, m.Status)
				}
				if len(doc.BasePaths) == 1 {
					if m := r.Match(op.Method, path[len(base):], buf); m.Status != NotFound {
						t.Errorf("%s %s without base path: status %v, want NotFound", op.Method, path[len(base):], m.Status)
					}
				}
			} else if m := r.Match(op.Method, "/zz-prefix"+path, buf); m.Op == op {
				t.Errorf("%s /zz-prefix%s: matched %s", op.Method, path, op.Key)
			}
			// Unknown and lower-case methods.
			wantAllowed := allowedFor(doc, op.Path)
			for _, method := range []string{"PURGE", strings.ToLower(op.Method)} {
				m := r.Match(method, path, buf)
				if m.Status != MethodNotAllowed || !reflect.DeepEqual(m.Allowed, wantAllowed) {
					t.Errorf("%s %s: status %v allowed %q, want MethodNotAllowed %q", method, path, m.Status, m.Allowed, wantAllowed)
				}
			}
			// HEAD falls back to GET.
			if op.Method == "GET" && doc.Operation("HEAD "+op.Path) == nil {
				if m := r.Match("HEAD", path, buf); m.Op != op {
					t.Errorf("HEAD %s: op %v, want %s", path, m.Op, op.Key)
				}
			}
		}
	}
}

// golden renders a stable listing of a document's operations.
func golden(doc *Document) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s %s (openapi %s)\n", doc.Title, doc.APIVersion, doc.Version)
	fmt.Fprintf(&b, "# base paths: %q\n", doc.BasePaths)
	for _, op := range doc.Operations {
		sec := "inherited"
		if op.SecurityExplicit {
			sec = "explicit"
		}
		fmt.Fprintf(&b, "%s\tid=%s\tparams=[%s]\tdeprecated=%t\tsecurity(%s)=%s\n",
			op.Key, op.ID, strings.Join(op.PathParams, ","), op.Deprecated, sec, formatSecurity(op.Security))
	}
	return b.String()
}

func formatSecurity(reqs []SecurityRequirement) string {
	if len(reqs) == 0 {
		return "none"
	}
	var alts []string
	for _, req := range reqs {
		if len(req) == 0 {
			alts = append(alts, "anonymous")
			continue
		}
		names := make([]string, 0, len(req))
		for n := range req {
			names = append(names, n)
		}
		sort.Strings(names)
		for i, n := range names {
			names[i] = n + "[" + strings.Join(req[n], " ") + "]"
		}
		alts = append(alts, strings.Join(names, "+"))
	}
	return strings.Join(alts, " | ")
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".txt")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the current output (run with -update after checking):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

func TestGoldenSharedSpecs(t *testing.T) {
	for _, file := range sharedSpecs(t) {
		name := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		t.Run(name, func(t *testing.T) {
			checkGolden(t, name, golden(loadShared(t, file)))
		})
	}
}

func TestGoldenFixtures(t *testing.T) {
	for _, file := range []string{"testdata/router.yaml", "testdata/openapi31.yaml", "testdata/swagger2.yaml", "testdata/multifile/api.yaml"} {
		name := "fixture-" + strings.TrimSuffix(strings.ReplaceAll(strings.TrimPrefix(file, "testdata/"), "/", "-"), ".yaml")
		t.Run(name, func(t *testing.T) {
			checkGolden(t, name, golden(mustLoad(t, file)))
		})
	}
}
