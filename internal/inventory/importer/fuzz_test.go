package importer

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/inventory/shape"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// fuzzSeeds are the checked-in corpora under testdata/fuzz/<target>,
// regenerated with -update: the samples, cut and edited.
func fuzzSeeds(t testing.TB) map[string]map[string][]byte {
	har := readTestdata(t, "bank.har")
	nginx := readTestdata(t, "access.log")
	jsonl := readTestdata(t, "access.jsonl")
	return map[string]map[string][]byte{
		"FuzzHAR": {
			"sample":    har,
			"truncated": har[:len(har)/2],
			"minimal":   []byte(`{"log":{"entries":[{"startedDateTime":"2025-01-02T03:04:05Z","time":1,"request":{"method":"GET","url":"https://a.example/p?x=1","headers":[{"name":"Authorization","value":"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}]},"response":{"status":200,"content":{"mimeType":"application/json","text":"eyJhIjpbMSx7ImIiOm51bGx9XX0=","encoding":"base64"}}}]}}`),
			"types":     []byte(`{"log":{"entries":[{"request":{"method":1,"url":[]},"response":{"status":"x"}},{"request":{"postData":{"mimeType":"application/json","text":"{\"a\":{\"b\":[{\"c\":1}]}}"}}}]}}`),
		},
		"FuzzNginx": {
			"sample":  nginx,
			"line":    []byte(strings.SplitAfter(string(nginx), "\n")[2]),
			"junk":    []byte("\x00\xff [ ] \" \\\" 200\n-\n\n"),
			"escapes": []byte(`::1 - u\x22 [02/Jan/2025:03:04:05 +0000] "GET /\x00?a=\xZZ&b HTTP/1.1" 200 - "\" rt=1.5 0.25` + "\n"),
		},
		"FuzzJSONLines": {
			"sample": jsonl,
			"types":  []byte(`{"time":[],"method":{},"path":1,"status":true,"request_time":"1e400"}` + "\n" + `{"timestamp":-1,"request":"GET http://h/?access_token=a.b.c"}` + "\n"),
			"nested": []byte(`{"method":"GET","path":"/","x":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + "}\n"),
		},
	}
}

func TestUpdateFuzzSeeds(t *testing.T) {
	for target, seeds := range fuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for name, b := range seeds {
			path := filepath.Join(dir, name)
			want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
			if *update {
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if string(got) != want {
				t.Errorf("%s is stale (run with -update)", path)
			}
		}
	}
}

// fuzzImport imports data and checks the result is sane.
func fuzzImport(t *testing.T, data []byte, o Options, source string) {
	o.Classify = func(body []byte) []string {
		if len(body) > o.MaxBodyBytes && o.MaxBodyBytes > 0 {
			t.Fatalf("classified a body of %d bytes", len(body))
		}
		return []string{"x", "x"}
	}
	n := 0
	st, _ := Import(context.Background(), bytes.NewReader(data), o, func(x event.Exchange) error {
		n++
		checkEvent(t, x, source)
		return nil
	})
	if st.Imported > st.Read || st.Imported+st.Skipped > st.Read || n != st.Imported || len(st.Errors) > maxProblems {
		t.Fatalf("stats %+v for %d events", st, n)
	}
}

// checkEvent checks what every imported event must satisfy.
func checkEvent(t *testing.T, x event.Exchange, source string) {
	t.Helper()
	if len(x.ID) != 32 || (source != "" && x.Source != source) || x.Source == "" || !methodLike(x.Method) || !strings.HasPrefix(x.Path, "/") ||
		x.Status < 0 || x.Status > 999 || x.LatencyMS < 0 || x.RequestBytes < 0 || x.ResponseBytes < 0 {
		t.Fatalf("insane event %+v", x)
	}
	for _, c := range x.Path {
		if c <= ' ' || c > '~' {
			t.Fatalf("path %q not printable ASCII", x.Path)
		}
	}
	if len(x.Params) > MaxQueryParams+MaxSchemaProperties {
		t.Fatalf("%d params", len(x.Params))
	}
	for _, s := range []map[string]any{x.RequestSchema, x.ResponseSchema} {
		if s != nil && (shape.Depth(s) > MaxSchemaDepth || shape.Nodes(s) > MaxSchemaNodes+1) {
			t.Fatalf("schema of depth %d, %d nodes", shape.Depth(s), shape.Nodes(s))
		}
	}
	if _, err := json.Marshal(x); err != nil {
		t.Fatalf("event does not marshal: %v", err)
	}
}

func FuzzHAR(f *testing.F) {
	f.Add([]byte(`{"log":{"entries":[]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzImport(t, data, Options{Format: FormatHAR}, SourceHAR)
		fuzzImport(t, data, Options{Format: FormatHAR, MaxBodyBytes: 16}, SourceHAR)
		// A small entry limit exercises the bound on decoding.
		st := &Stats{}
		im := &importer{ctx: context.Background(), o: Options{MaxBodyBytes: 64}, st: st,
			emit: func(x event.Exchange) error { checkEvent(t, x, SourceHAR); return nil }}
		im.har(bytes.NewReader(data), 128)
		if st.Imported > st.Read || st.Imported+st.Skipped > st.Read {
			t.Fatalf("stats %+v", st)
		}
	})
}

func FuzzNginx(f *testing.F) {
	f.Add([]byte("1.2.3.4 - - [02/Jan/2025:03:04:05 +0000] \"GET / HTTP/1.1\" 200 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzImport(t, data, Options{Format: FormatNginx}, SourceAccessLog)
		fuzzImport(t, data, Options{Format: FormatNginx, MaxLineBytes: 64}, SourceAccessLog)
	})
}

func FuzzJSONLines(f *testing.F) {
	f.Add([]byte(`{"method":"GET","path":"/"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzImport(t, data, Options{Format: FormatJSONL}, SourceAccessLog)
		fuzzImport(t, data, Options{Format: FormatAuto, MaxLineBytes: 64}, "")
	})
}
