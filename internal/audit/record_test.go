package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestGoldenRecord(t *testing.T) {
	got := genLog(1)
	path := filepath.Join("testdata", "golden", "record.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("record differs from %s (run with -update if intended)\n got: %s\nwant: %s", path, got, want)
	}
	if res := mustVerify(t, want); res != (VerifyResult{Records: 1}) {
		t.Errorf("golden record does not verify: %+v", res)
	}
}

func TestFieldOrderAndNames(t *testing.T) {
	line := genLog(1)
	keys := topLevelKeys(t, line)
	want := []string{"time", "msg", "request_id", "api", "operation", "method", "path", "host",
		"status", "latency_ms", "upstream_latency_ms", "client", "mode", "upstream", "retries",
		"bytes_in", "bytes_out", "decisions", "seq", "prev", "hash"}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Errorf("keys\n got %v\nwant %v", keys, want)
	}
	var v map[string]any
	if err := json.Unmarshal(line, &v); err != nil {
		t.Fatal(err)
	}
	if v["msg"] != "exchange" || v["latency_ms"] != 1.234 || v["upstream_latency_ms"] != 0.987 ||
		v["seq"] != 1.0 || v["prev"] != strings.Repeat("0", 64) || v["time"] != "2025-01-02T03:04:05.123456789Z" {
		t.Errorf("unexpected values: %v", v)
	}
	decs := v["decisions"].([]any)
	d0 := decs[0].(map[string]any)
	if len(decs) != 2 || d0["stage"] != "authn" || d0["action"] != "allow" || d0["enforced"] != true {
		t.Errorf("decisions = %v", decs)
	}
}

func TestOptionalFieldsOmitted(t *testing.T) {
	r := Record{Time: baseTime, Method: "GET", Path: "/", Host: "h", Status: 404, Mode: "monitor"}
	line := newEncoder(0, zeroHash).append(nil, &r)
	keys := strings.Join(topLevelKeys(t, line), ",")
	want := "time,msg,request_id,method,path,host,status,latency_ms,upstream_latency_ms,client,mode,retries,bytes_in,bytes_out,seq,prev,hash"
	if keys != want {
		t.Errorf("keys\n got %s\nwant %s", keys, want)
	}
}

func TestTimeIsUTC(t *testing.T) {
	r := sampleRecord(0)
	r.Time = r.Time.In(time.FixedZone("X", 3600))
	line := newEncoder(0, zeroHash).append(nil, &r)
	if !bytes.Contains(line, []byte(`"time":"2025-01-02T03:04:05.123456789Z"`)) {
		t.Errorf("time not normalised to UTC: %s", line)
	}
}

func TestHostileInput(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Record)
	}{
		{"newline in path", func(r *Record) { r.Path = "/a\nb\r\n{\"seq\":1}\n" }},
		{"quotes", func(r *Record) { r.Path = `/"},"hash":"00"}` + "\n"; r.Host = `h"o"st` }},
		{"invalid UTF-8", func(r *Record) { r.Path = "/\xff\xfe\xc3"; r.Host = "\x80host" }},
		{"line separators", func(r *Record) { r.Path = "/\u2028\u2029\x00\x1b" }},
		{"1 MiB path", func(r *Record) { r.Path = "/" + strings.Repeat("A\n", 1<<19) }},
		{"1 MiB of invalid bytes", func(r *Record) { r.Path = strings.Repeat("\xff", 1<<20) }},
		{"long host and request id", func(r *Record) {
			r.Host = strings.Repeat("h", 10000)
			r.RequestID = strings.Repeat("\n", 10000)
		}},
		{"hostile decision", func(r *Record) {
			r.Decisions = make([]Decision, 1000)
			for i := range r.Decisions {
				r.Decisions[i] = Decision{Stage: "waf", Action: "block", Reason: strings.Repeat("\xff\n", 10000)}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleRecord(0)
			tt.mod(&r)
			e := newEncoder(0, zeroHash)
			var log []byte
			log = e.append(log, &r)
			first := len(log)
			if bytes.Count(log, []byte("\n")) != 1 || log[len(log)-1] != '\n' {
				t.Fatalf("not exactly one line: %q", log[:min(len(log), 300)])
			}
			if len(log) > MaxLineBytes/2 {
				t.Errorf("line is %d bytes", len(log))
			}
			var v struct {
				Path, Host, RequestID string
				Decisions             []map[string]any
			}
			if err := json.Unmarshal(log, &v); err != nil {
				t.Fatalf("not valid JSON: %v", err)
			}
			if len(v.Path) > MaxPathBytes*3 || !utf8.ValidString(v.Path) {
				t.Errorf("path not capped or not UTF-8: %d bytes", len(v.Path))
			}
			if len(v.Decisions) > MaxDecisions {
				t.Errorf("%d decisions", len(v.Decisions))
			}
			r2 := sampleRecord(1)
			log = e.append(log, &r2)
			if res := mustVerify(t, log); res != (VerifyResult{Records: 2}) {
				t.Errorf("Verify = %+v (first line %d bytes)", res, first)
			}
		})
	}
}

func TestCapString(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"},   // é is 2 bytes: do not split it
		{"a€b", 3, "a"},  // € is 3 bytes
		{"a€b", 4, "a€"}, // exact boundary
		{"\xff\xff\xff", 2, "\xff\xff"},
		{"a\x80\x80\x80\x80\x80", 5, "a\x80"}, // stray continuation bytes: bounded back-off
	}
	for _, tt := range tests {
		if got := capString(tt.in, tt.n); got != tt.want {
			t.Errorf("capString(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// topLevelKeys returns the keys of a JSON object line in order.
func topLevelKeys(t *testing.T, line []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %v %v", tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
