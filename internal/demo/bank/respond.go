package bank

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// Problem is an RFC 9457 problem document, as the bank sends it.
type Problem struct {
	Type          string         `json:"type"`
	Title         string         `json:"title"`
	Status        int            `json:"status"`
	Detail        string         `json:"detail,omitempty"`
	Instance      string         `json:"instance,omitempty"`
	InvalidParams []InvalidParam `json:"invalidParams,omitempty"`
}

// InvalidParam names one rejected request parameter or body property.
type InvalidParam struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, "application/json", status, v)
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string, invalid []InvalidParam) {
	writeBody(w, "application/problem+json", status, Problem{
		Type:          "about:blank",
		Title:         http.StatusText(status),
		Status:        status,
		Detail:        detail,
		Instance:      r.URL.Path,
		InvalidParams: invalid,
	})
}

func writeBody(w http.ResponseWriter, contentType string, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing useful to do
}

// decodeJSON reads a JSON object of at most MaxBodyBytes into dst. Unknown
// properties are ignored (the bank is lenient on purpose). On failure it has
// written the problem response and returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeProblem(w, r, http.StatusUnsupportedMediaType, "the request body must be application/json", nil)
		return false
	}
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	err = dec.Decode(dst)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		writeProblem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body exceeds %d bytes", MaxBodyBytes), nil)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		writeProblem(w, r, http.StatusBadRequest, "the request body is invalid",
			[]InvalidParam{{Name: typeErr.Field, Reason: "must be a " + jsonType(typeErr.Type.Kind().String())}})
	case errors.Is(err, io.EOF):
		writeProblem(w, r, http.StatusBadRequest, "the request body is empty", nil)
	default:
		writeProblem(w, r, http.StatusBadRequest, "the request body is not a valid JSON object", nil)
	}
	return false
}

func jsonType(kind string) string {
	switch {
	case kind == "string" || kind == "ptr":
		return "string"
	case strings.HasPrefix(kind, "int") || strings.HasPrefix(kind, "float"):
		return "number"
	default:
		return "JSON " + kind
	}
}

// randomToken returns n random bytes in lower-case base32 (no padding).
func randomToken(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf) // never fails (crypto/rand)
	var sb strings.Builder
	var acc, bits uint
	for _, c := range buf {
		acc = acc<<8 | uint(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			sb.WriteByte(idAlphabet[(acc>>bits)&31])
		}
	}
	if bits > 0 {
		sb.WriteByte(idAlphabet[(acc<<(5-bits))&31])
	}
	return sb.String()
}
