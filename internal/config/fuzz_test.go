package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the config loader: it must never
// panic, and every failure must be a located Errors value.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.yaml")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("listeners: [{addr: ':1', insecure: true}]\nadmin: {token: ${T:-0123456789abcdef}}\n"))
	lookup := func(k string) (string, bool) {
		if k == "T" {
			return "0123456789abcdef0123", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		cfg, err := Parse(data, "/nonexistent/fuzz.yaml", lookup)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
		}
	})
}
