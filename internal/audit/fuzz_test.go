package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fuzzSeeds are the checked-in corpus under testdata/fuzz/FuzzVerify,
// regenerated with -update.
func fuzzSeeds() map[string][]byte {
	valid := genLog(3)
	lines := splitLines(valid)
	edited := bytes.Replace(valid, []byte(`"status":200`), []byte(`"status":201`), 1)
	swapped := joinLines([][]byte{lines[0], lines[2], lines[1]})
	deleted := joinLines([][]byte{lines[0], lines[2]})
	recomputed := joinLines([][]byte{lines[0], rehash(bytes.Replace(lines[1], []byte(`"GET"`), []byte(`"PUT"`), 1)), lines[2]})
	return map[string][]byte{
		"valid3":     valid,
		"edited":     edited,
		"swapped":    swapped,
		"deleted":    deleted,
		"recomputed": recomputed,
		"torn":       valid[:len(valid)-17],
		"garbage":    append(bytes.Clone(valid), "\x00garbage\n"...),
	}
}

func TestUpdateFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	seeds := fuzzSeeds()
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

func FuzzVerify(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("\n"))
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":1,"prev":"0","hash":"` + string(zeroHash[:]) + `"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Verify(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Verify returned an I/O error on a bytes.Reader: %v", err)
		}
		lines := bytes.Count(data, []byte("\n"))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			lines++
		}
		switch {
		case res.FirstBroken == 0:
			if res.Records != lines || res.Reason != "" {
				t.Fatalf("intact result %+v for %d lines", res, lines)
			}
		case res.FirstBroken != res.Records+1 || res.FirstBroken > lines || res.Reason == "":
			t.Fatalf("inconsistent result %+v for %d lines", res, lines)
		}
		// Open must agree with Verify about a file's last line.
		if res.FirstBroken == 0 && res.Records > 0 {
			last := data[bytes.LastIndexByte(data[:len(data)-1], '\n')+1:]
			if _, reason := checkLine(last); reason != "" {
				t.Fatalf("intact log but last line fails checkLine: %s", reason)
			}
		}
	})
}
