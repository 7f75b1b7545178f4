package pipeline

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// bodyState is the lazily read request and response bodies of an exchange,
// shared by every stage that inspects them so each is read once.
type bodyState struct {
	reqRead bool
	req     []byte
	reqErr  error

	respRead     bool
	resp         []byte
	respComplete bool
	respErr      error
}

// RequestBody returns the request body, reading it once. The body is
// already bounded by limits.max_body_bytes (a larger one fails with
// *http.MaxBytesError). The request stays replayable: what the upstream
// receives is exactly what was read.
func (x *Exchange) RequestBody() ([]byte, error) {
	b := &x.bodies
	if b.reqRead {
		return b.req, b.reqErr
	}
	b.reqRead = true
	r := x.Request
	if r == nil || r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	data, err := io.ReadAll(r.Body)
	b.req, b.reqErr = data, err
	r.Body = io.NopCloser(bytes.NewReader(data))
	if err == nil {
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	}
	return data, err
}

// ReadRequestBody returns the request body when a stage has already read
// it (RequestBody), without reading it: after the request stages the body
// belongs to the upstream.
func (x *Exchange) ReadRequestBody() ([]byte, bool) {
	b := &x.bodies
	return b.req, b.reqRead && b.reqErr == nil
}

// InspectedResponseBody returns the response body when a stage has read
// all of it (ResponseBody), without reading it.
func (x *Exchange) InspectedResponseBody() ([]byte, bool) {
	b := &x.bodies
	return b.resp, b.respRead && b.respComplete && b.respErr == nil
}

// errBodyTooLarge says a response was larger than what may be inspected.
var errBodyTooLarge = errors.New("response body larger than the inspection limit")

// ResponseBody returns up to limit bytes of the decoded response body,
// reading it once, and whether that is the whole body. A gzip-encoded body
// is decoded for inspection (bounded by limit: a compression bomb stops at
// the limit); when it is complete the response is sent decoded, without
// Content-Encoding. An incomplete body is sent on unchanged: what was read
// followed by the rest of the stream.
func (x *Exchange) ResponseBody(resp *http.Response, limit int64) ([]byte, bool, error) {
	b := &x.bodies
	if b.respRead {
		return b.resp, b.respComplete, b.respErr
	}
	b.respRead = true
	if resp.Body == nil || resp.Body == http.NoBody {
		b.respComplete = true
		return nil, true, nil
	}
	enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding")))
	switch enc {
	case "", "identity":
		data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			b.respErr = fmt.Errorf("read response body: %w", err)
			resp.Body = readCloser{io.MultiReader(bytes.NewReader(data), resp.Body), resp.Body}
			return nil, false, b.respErr
		}
		complete := int64(len(data)) <= limit
		if complete {
			_ = resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(data))
		} else {
			resp.Body = readCloser{io.MultiReader(bytes.NewReader(data), resp.Body), resp.Body}
			data = data[:limit]
		}
		b.resp, b.respComplete = data, complete
		return data, complete, nil
	case "gzip", "x-gzip":
		var raw bytes.Buffer
		zr, err := gzip.NewReader(io.TeeReader(resp.Body, &raw))
		if err != nil {
			resp.Body = readCloser{io.MultiReader(bytes.NewReader(raw.Bytes()), resp.Body), resp.Body}
			b.respErr = fmt.Errorf("decode gzip response: %w", err)
			return nil, false, b.respErr
		}
		data, err := io.ReadAll(io.LimitReader(zr, limit+1))
		complete := err == nil && int64(len(data)) <= limit
		if complete {
			// Drain whatever follows the gzip stream so the raw copy is whole.
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			SetResponseBody(resp, data)
			resp.Header.Del("Content-Encoding")
			b.resp, b.respComplete = data, true
			return data, true, nil
		}
		resp.Body = readCloser{io.MultiReader(bytes.NewReader(raw.Bytes()), resp.Body), resp.Body}
		if err != nil {
			b.respErr = fmt.Errorf("decode gzip response: %w", err)
			return nil, false, b.respErr
		}
		b.resp, b.respComplete = data[:limit], false
		return b.resp, false, nil
	default:
		// br, zstd, deflate: not inspected; the caller records that.
		b.respErr = fmt.Errorf("response content-encoding %q is not inspected: %w", enc, errBodyTooLarge)
		return nil, false, b.respErr
	}
}

// SetResponseBody replaces the body sent to the client, for a stage that
// masked or stripped it, and keeps Content-Length right.
func SetResponseBody(resp *http.Response, body []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("Transfer-Encoding")
}

// SetInspectedResponseBody is SetResponseBody for the body returned by
// ResponseBody, so that later stages see the new one.
func (x *Exchange) SetInspectedResponseBody(resp *http.Response, body []byte) {
	x.bodies.resp = body
	SetResponseBody(resp, body)
}

type readCloser struct {
	io.Reader
	io.Closer
}
