package gateway

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// maxRequestIDLen bounds an accepted incoming request id: long enough for a
// UUID, a W3C trace id or an AWS X-Amzn-Trace-Id, short enough to keep logs
// and headers small.
const maxRequestIDLen = 128

// requestID returns the incoming id when accept is set and it is
// well-formed, and a new one otherwise.
func requestID(incoming string, accept bool) string {
	if accept && validRequestID(incoming) {
		return incoming
	}
	return newRequestID()
}

// validRequestID accepts 8 to 128 characters of [A-Za-z0-9._:=+/-]: enough
// for UUIDs, trace ids and base64, and nothing that could break a log line,
// a header or a JSON string.
func validRequestID(s string) bool {
	if len(s) < 8 || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '=', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// newRequestID returns a UUIDv7 (RFC 9562): time-ordered, so ids sort with
// the audit log, and 74 random bits, so they cannot be guessed.
func newRequestID() string {
	var u [16]byte
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint64(u[:8], ms<<16)
	_, _ = rand.Read(u[6:])     // crypto/rand.Read never fails (Go 1.24+)
	u[6] = (u[6] & 0x0f) | 0x70 // version 7
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:], u[10:])
	return string(out[:])
}

// NewRequestID returns a fresh request id (a UUIDv7), for other processes
// that speak problem+json (the collector's admin listener).
func NewRequestID() string { return newRequestID() }
