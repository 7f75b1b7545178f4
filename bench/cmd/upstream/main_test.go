package main

import (
	"encoding/json"
	"testing"
)

func TestBodyIsOneKiBOfJSON(t *testing.T) {
	if !json.Valid(Body) {
		t.Fatal("body is not valid JSON")
	}
	if n := len(Body); n < 960 || n > 1100 {
		t.Fatalf("body is %d bytes, want about 1 KiB", n)
	}
}

func TestRequireLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:0": true, "[::1]:80": true,
		"0.0.0.0:80": false, ":80": false, "10.0.0.1:80": false, "localhost:80": false,
	} {
		if err := requireLoopback(addr); (err == nil) != ok {
			t.Errorf("requireLoopback(%q) = %v", addr, err)
		}
	}
}
