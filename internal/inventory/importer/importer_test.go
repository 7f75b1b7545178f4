package importer

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/event"
)

var update = flag.Bool("update", false, "rewrite testdata/golden and the testdata/fuzz seed corpora")

// testClassify is a stand-in for the DLP detectors.
func testClassify(body []byte) []string {
	var out []string
	if bytes.Contains(body, []byte("@example.com")) || bytes.Contains(body, []byte("%40example.com")) {
		out = append(out, "email")
	}
	if bytes.Contains(body, []byte("GB33BUKB")) || bytes.Contains(body, []byte("DE89370400")) {
		out = append(out, "iban", "iban")
	}
	if bytes.Contains(body, []byte("+44 20")) {
		out = append(out, "phone")
	}
	return out
}

// collect imports data and returns the events.
func collect(t testing.TB, data []byte, o Options) ([]event.Exchange, Stats, error) {
	t.Helper()
	var xs []event.Exchange
	st, err := Import(context.Background(), bytes.NewReader(data), o, func(x event.Exchange) error {
		xs = append(xs, x)
		return nil
	})
	return xs, st, err
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// golden is what a golden file holds.
type golden struct {
	Stats  Stats            `json:"stats"`
	Events []event.Exchange `json:"events"`
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name, file string
		format     Format
		wantRead   int
		wantImp    int
	}{
		{name: "har", file: "bank.har", format: FormatHAR, wantRead: 5, wantImp: 5},
		{name: "har-auto", file: "bank.har", format: FormatAuto, wantRead: 5, wantImp: 5},
		{name: "nginx", file: "access.log", format: FormatNginx, wantRead: 6, wantImp: 5},
		{name: "nginx-auto", file: "access.log", format: "", wantRead: 6, wantImp: 5},
		{name: "jsonl", file: "access.jsonl", format: FormatJSONL, wantRead: 7, wantImp: 5},
		{name: "jsonl-auto", file: "access.jsonl", format: FormatAuto, wantRead: 7, wantImp: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			xs, st, err := collect(t, readTestdata(t, tt.file), Options{Format: tt.format, API: "bank", Classify: testClassify})
			if err != nil {
				t.Fatal(err)
			}
			if st.Read != tt.wantRead || st.Imported != tt.wantImp || st.Skipped != st.Read-st.Imported || len(xs) != st.Imported {
				t.Fatalf("stats %+v, %d events; want read %d, imported %d", st, len(xs), tt.wantRead, tt.wantImp)
			}
			got, err := json.MarshalIndent(golden{Stats: st, Events: xs}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "golden", strings.TrimSuffix(tt.name, "-auto")+".json")
			if *update && !strings.HasSuffix(tt.name, "-auto") {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update after checking):\n%s", path, got)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		head string
		want Format
	}{
		{"har pretty", string(readTestdata(t, "bank.har")), FormatHAR},
		{"har minified", `{"log":{"version":"1.2","entries":[]}}`, FormatHAR},
		{"har with BOM", "\xef\xbb\xbf\n  {\"log\": {\"entries\": []}}", FormatHAR},
		{"har entries beyond head", "{\n  \"log\": {\n    \"version\": \"1.2\",\n    \"pages\": [", FormatHAR},
		{"jsonl", string(readTestdata(t, "access.jsonl")), FormatJSONL}, // holds a non-JSON line
		{"jsonl cut", "{\"method\":\"GET\"}\n{\"method\":\"POST\"}\n\n{\"a\":1", FormatJSONL},
		{"jsonl long first line", `{"method":"GET","path":"/aaaaaaaa`, FormatJSONL},
		{"pretty JSON, not HAR", "{\n  \"a\": 1\n}\n", FormatNginx},
		{"jsonl one line", `{"method":"GET","path":"/"}`, FormatJSONL},
		{"jsonl mentioning log", "{\"log\":\"x\"}\n{\"log\":\"y\"}\n", FormatJSONL},
		{"nginx", string(readTestdata(t, "access.log")), FormatNginx},
		{"empty", "", FormatNginx},
		{"whitespace", " \n\t", FormatNginx},
		{"binary", "\x00\x01\x02", FormatNginx},
		{"json array", `[{"log":1,"entries":2}]`, FormatNginx},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Detect([]byte(tt.head)); got != tt.want {
				t.Errorf("Detect = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIDsIdempotentAndUnique(t *testing.T) {
	for _, file := range []string{"bank.har", "access.log", "access.jsonl"} {
		t.Run(file, func(t *testing.T) {
			data := readTestdata(t, file)
			a, _, err := collect(t, data, Options{})
			if err != nil {
				t.Fatal(err)
			}
			b, _, err := collect(t, data, Options{API: "other", Classify: testClassify})
			if err != nil {
				t.Fatal(err)
			}
			if len(a) == 0 || len(a) != len(b) {
				t.Fatalf("%d and %d events", len(a), len(b))
			}
			seen := map[string]bool{}
			for i := range a {
				if a[i].ID != b[i].ID {
					t.Errorf("event %d: ids %s and %s", i, a[i].ID, b[i].ID)
				}
				if len(a[i].ID) != 32 || seen[a[i].ID] {
					t.Errorf("event %d: id %q not 32 hex or repeated", i, a[i].ID)
				}
				seen[a[i].ID] = true
			}
		})
	}
}

// secrets are the credential and personal values of the samples; none may
// reach an event or a problem message.
var secrets = []string{
	"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImJhbmstMjAyNS0wMSJ9", // JWT header
	"eyJpc3MiOiJodHRwczovL2lkLmJhbmsuZXhhbXBsZSIsInN1YiI6ImN1c3RvbWVy", // JWT payload
	"Qm9ndXNTaWduYXR1cmVOb3RWZXJpZmllZEJ5",                             // JWT signature
	"customer-7f3a91",                                                  // JWT sub, in clear
	"live_ak_9sd8f7g6h5j4k3l2",                                         // API key
	"cl1ent-S3cret", "d2ViLWNsaWVudDpj",                                // Basic password, Basic credentials
	"web-client",                                 // Basic user, in clear
	"hunter2", "Pa55word", "alice%40example.com", // form password and user
	"opaque-Rk9PQkFSLXRva2VuLXZhbHVl", "SECRETr3fr3sh", // opaque and refresh tokens
	"GB33BUKB20201555555555", "DE89370400440532013000", "alice@example.com", "+44 20 7946", "Alice Example", "Bob Example",
	"1250.40", "Invoice 2024-117", "acc_01HZX3", "tr_9f8e7d", "SW1A",
	"quoted phrase", "alice\"", `"bob"`,
}

func TestNoSecretsInOutput(t *testing.T) {
	for _, file := range []string{"bank.har", "access.log", "access.jsonl"} {
		t.Run(file, func(t *testing.T) {
			xs, st, err := collect(t, readTestdata(t, file), Options{Classify: testClassify})
			if err != nil {
				t.Fatal(err)
			}
			out, err := json.Marshal(golden{Stats: st, Events: xs})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if bytes.Contains(out, []byte(s)) {
					t.Errorf("output holds %q", s)
				}
			}
		})
	}
}

func TestHARAuthAndBodies(t *testing.T) {
	xs, _, err := collect(t, readTestdata(t, "bank.har"), Options{Classify: testClassify})
	if err != nil {
		t.Fatal(err)
	}
	wantAuth := []string{event.AuthJWT, event.AuthAPIKey, event.AuthJWT, event.AuthBasic, event.AuthIntrospection}
	for i, x := range xs {
		if x.Auth != wantAuth[i] {
			t.Errorf("entry %d: auth %q, want %q", i+1, x.Auth, wantAuth[i])
		}
		if x.Client != "" || x.ClientClass != event.ClientExternal || x.Source != SourceHAR {
			t.Errorf("entry %d: client %q class %q source %q", i+1, x.Client, x.ClientClass, x.Source)
		}
	}
	if xs[0].Subject != hashValue("customer-7f3a91") || xs[0].Subject != xs[2].Subject {
		t.Errorf("JWT subjects %q, %q", xs[0].Subject, xs[2].Subject)
	}
	if xs[3].Subject != hashValue("web-client") {
		t.Errorf("Basic subject %q", xs[3].Subject)
	}
	if xs[1].ResponseSchema == nil || xs[1].ResponseBytes != 140 {
		t.Errorf("base64 response: schema %v, %d bytes", xs[1].ResponseSchema, xs[1].ResponseBytes)
	}
	if xs[2].RequestSchema == nil || len(xs[2].RequestClasses) != 1 || xs[2].RequestClasses[0] != "iban" {
		t.Errorf("POST: schema %v, classes %v", xs[2].RequestSchema, xs[2].RequestClasses)
	}
}

func TestHARSkips(t *testing.T) {
	doc := `{"log":{"entries":[
		{"startedDateTime":"2025-01-02T03:04:05Z","request":{"method":"GET","url":"data:image/png;base64,AAAA"},"response":{"status":200}},
		{"startedDateTime":"2025-01-02T03:04:05Z","request":{"method":"GET","url":"https://a.example/x"},"response":{"status":0}},
		{"startedDateTime":"2025-01-02T03:04:05Z","request":{"method":"GET","url":"https://a.example/x"},"response":{"status":"200"}},
		{"startedDateTime":"2025-01-02T03:04:05Z","request":{"method":"G E T","url":"https://a.example/x"},"response":{"status":200}},
		{"startedDateTime":"2025-01-02T03:04:05Z","request":{"method":"GET","url":"https:///nohost"},"response":{"status":200}},
		{"startedDateTime":"later","request":{"method":"GET","url":"HTTPS://A.example:8443"},"response":{"status":200.0}}
	]},"extra":[1,{"a":[2]}]}`
	xs, st, err := collect(t, []byte(doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Read != 6 || st.Imported != 1 || st.Skipped != 5 || len(st.Errors) != 6 {
		t.Fatalf("stats %+v", st)
	}
	x := xs[0]
	if x.Host != "a.example:8443" || x.Path != "/" || !x.Time.IsZero() || x.Auth != event.AuthNone {
		t.Errorf("event %+v", x)
	}
	for _, want := range []string{"entry 1: not an HTTP URL", "entry 2: no response", "entry 3: field response.status", "entry 4: invalid method", "entry 5: URL without host", "entry 6: unparseable startedDateTime"} {
		if !strings.Contains(strings.Join(st.Errors, "\n"), want) {
			t.Errorf("errors %q lack %q", st.Errors, want)
		}
	}
}

func TestHARDocumentErrors(t *testing.T) {
	for _, doc := range []string{``, `[]`, `{"log":{"entries":{}}}`, `{"log":{"entries":[{"request":`, `{"nolog":1}`, `{"log":[]}`} {
		if _, _, err := collect(t, []byte(doc), Options{Format: FormatHAR}); err == nil {
			t.Errorf("%q: no error", doc)
		}
	}
}

func TestHAREntryLimit(t *testing.T) {
	big := `{"log":{"entries":[{"request":{"method":"GET","url":"https://a.example/"},"response":{"status":200,"content":{"text":"` +
		strings.Repeat("x", 4096) + `"}}}]}}`
	im := &importer{ctx: context.Background(), o: Options{MaxBodyBytes: DefaultMaxBodyBytes}, emit: func(event.Exchange) error { return nil }, st: &Stats{}}
	err := im.har(strings.NewReader(big), 1024)
	if !errors.Is(err, errTooLarge) || !strings.Contains(err.Error(), "entry 1") {
		t.Fatalf("err = %v", err)
	}
	im.st = &Stats{}
	if err := im.har(strings.NewReader(big), 8192); err != nil || im.st.Imported != 1 {
		t.Fatalf("err = %v, stats %+v", err, im.st)
	}
	// A huge token outside the entries is bounded too.
	pages := `{"log":{"pages":"` + strings.Repeat("p", 4096) + `","entries":[]}}`
	if err := im.har(strings.NewReader(pages), 1024); !errors.Is(err, errTooLarge) {
		t.Fatalf("pages: err = %v", err)
	}
}

func TestMaxBodyBytes(t *testing.T) {
	xs, _, err := collect(t, readTestdata(t, "bank.har"), Options{MaxBodyBytes: 64, Classify: testClassify})
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range xs {
		if x.RequestSchema != nil || x.ResponseSchema != nil || x.RequestClasses != nil || x.ResponseClasses != nil {
			t.Errorf("entry %d: body inspected beyond MaxBodyBytes", i+1)
		}
		if x.ResponseBytes == 0 {
			t.Errorf("entry %d: size lost", i+1)
		}
	}
}

func TestNginxLines(t *testing.T) {
	tests := []struct {
		name, line string
		reason     string
		check      func(event.Exchange) bool
	}{
		{name: "common format", line: `10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "GET /a HTTP/1.0" 200 12`,
			check: func(x event.Exchange) bool { return x.Path == "/a" && x.ResponseBytes == 12 && x.Auth == "" }},
		{name: "absolute form", line: `10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "GET http://API.example:8080/p?x=1 HTTP/1.1" 200 1 "-" "-"`,
			check: func(x event.Exchange) bool {
				return x.Host == "api.example:8080" && x.Path == "/p" && len(x.Params) == 1
			}},
		{name: "unescaped quote", line: `10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "GET /a"b HTTP/1.1" 404 0 "-" "-"`,
			check: func(x event.Exchange) bool { return x.Path == `/a"b` && x.Status == 404 }},
		{name: "nginx hex escape", line: `10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "GET /caf\xC3\xA9 HTTP/1.1" 200 0 "-" "-"`,
			check: func(x event.Exchange) bool { return x.Path == "/caf%C3%A9" }},
		{name: "user with space", line: `10.0.0.1 - john doe [02/Jan/2025:03:04:05 +0000] "GET / HTTP/1.1" 200 0`,
			check: func(x event.Exchange) bool { return x.Auth == event.AuthBasic && x.Subject == hashValue("john doe") }},
		{name: "access_token JWT in query", line: `10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "GET /a?access_token=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0. HTTP/1.1" 200 0`,
			check: func(x event.Exchange) bool { return x.Auth == event.AuthJWT && x.Subject == hashValue("x") }},
		{name: "no proto", line: `10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "GET /" 200 0`,
			check: func(x event.Exchange) bool { return x.Path == "/" }},
		{name: "dash request", line: `10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "-" 400 0 "-" "-"`, reason: "malformed request line"},
		{name: "empty request", line: `10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "" 400 0 "-" "-"`, reason: "malformed request line"},
		{name: "star", line: `10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "OPTIONS * HTTP/1.1" 200 0`, reason: "request target is not a path"},
		{name: "bad time", line: `10.0.0.1 - - [yesterday] "GET / HTTP/1.1" 200 0`, reason: "unparseable [time]"},
		{name: "no time", line: `10.0.0.1 - - "GET / HTTP/1.1" 200 0`, reason: "no [time]"},
		{name: "bad status", line: `10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "GET / HTTP/1.1" OK 0`, reason: "no request and status"},
		{name: "bad bytes", line: `10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "GET / HTTP/1.1" 200 many`, reason: "invalid body_bytes_sent"},
		{name: "junk", line: "\x00\x01\x02 garbage", reason: "no [time]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := &importer{o: Options{}, st: &Stats{}}
			x, reason := im.nginxLine(1, []byte(tt.line))
			if reason != tt.reason {
				t.Fatalf("reason %q, want %q", reason, tt.reason)
			}
			if tt.check != nil && !tt.check(x) {
				t.Errorf("event %+v", x)
			}
		})
	}
}

func TestLongLines(t *testing.T) {
	line := `10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "GET /a HTTP/1.1" 200 1`
	long := `10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "GET /` + strings.Repeat("a", 300) + ` HTTP/1.1" 200 1`
	data := strings.Join([]string{line, long, line + "\r", long}, "\n") // the last line without a newline
	xs, st, err := collect(t, []byte(data), Options{Format: FormatNginx, MaxLineBytes: 128})
	if err != nil {
		t.Fatal(err)
	}
	if st.Read != 4 || st.Imported != 2 || st.Skipped != 2 || len(xs) != 2 ||
		st.Errors[0] != "line 2: longer than 128 bytes" || st.Errors[1] != "line 4: longer than 128 bytes" {
		t.Fatalf("stats %+v", st)
	}
	// Lines beyond the bufio buffer too.
	huge := strings.Repeat("z", 3*detectHeadBytes)
	_, st, err = collect(t, []byte(line+"\n"+huge+"\n"+line+"\n"), Options{Format: FormatNginx})
	if err != nil || st.Read != 3 || st.Imported != 2 || st.Errors[0] != "line 2: longer than 65536 bytes" {
		t.Fatalf("err %v, stats %+v", err, st)
	}
}

func TestGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(readTestdata(t, "access.jsonl"))
	zw.Close()
	xs, st, err := collect(t, buf.Bytes(), Options{})
	if err != nil || st.Imported != 5 || len(xs) != 5 {
		t.Fatalf("err %v, stats %+v", err, st)
	}
}

func TestProblemsCapped(t *testing.T) {
	data := strings.Repeat("junk\n", 50)
	_, st, err := collect(t, []byte(data), Options{Format: FormatNginx})
	if err != nil || st.Read != 50 || st.Skipped != 50 || len(st.Errors) != maxProblems {
		t.Fatalf("err %v, stats read %d skipped %d errors %d", err, st.Read, st.Skipped, len(st.Errors))
	}
}

func TestImportErrors(t *testing.T) {
	data := readTestdata(t, "access.log")
	if _, err := Import(context.Background(), bytes.NewReader(data), Options{}, nil); err == nil {
		t.Error("nil emit: no error")
	}
	if _, err := Import(context.Background(), bytes.NewReader(data), Options{Format: "csv"}, func(event.Exchange) error { return nil }); err == nil {
		t.Error("unknown format: no error")
	}
	if _, err := Import(context.Background(), bytes.NewReader(data), Options{MaxLineBytes: MaxLineBytesLimit + 1}, func(event.Exchange) error { return nil }); err == nil {
		t.Error("huge MaxLineBytes: no error")
	}
	stop := errors.New("stop")
	st, err := Import(context.Background(), bytes.NewReader(data), Options{}, func(event.Exchange) error { return stop })
	if !errors.Is(err, stop) || st.Imported != 0 || st.Read != 1 {
		t.Errorf("emit error: err %v, stats %+v", err, st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, file := range []string{"access.log", "bank.har"} {
		if _, err := Import(ctx, bytes.NewReader(readTestdata(t, file)), Options{}, func(event.Exchange) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: cancelled context: err %v", file, err)
		}
	}
	if _, err := Import(context.Background(), bytes.NewReader([]byte{0x1f, 0x8b, 0, 0}), Options{}, func(event.Exchange) error { return nil }); err == nil {
		t.Error("broken gzip: no error")
	}
}
