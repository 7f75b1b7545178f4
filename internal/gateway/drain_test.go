package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

type panicStage struct{}

func (panicStage) Name() string { return "boom" }
func (panicStage) Handle(context.Context, *pipeline.Exchange) pipeline.Decision {
	panic("stage bug")
}

// TestPanicIs500: a panicking stage answers 500 problem+json with the
// request id, is logged and counted, and the gateway keeps serving.
func TestPanicIs500(t *testing.T) {
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, ""))
	good := env.g.snap.Load()
	bad := *good
	bad.pipeline = pipeline.New(nil, []pipeline.Stage{good.route, panicStage{}}, nil)
	env.g.snap.Store(&bad)
	resp, err := env.client.Get(env.base + "/x")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 500 || decodeProblem(t, resp).Reason != "internal_error" {
		t.Fatalf("status %d", resp.StatusCode)
	}
	resp.Body.Close()
	if !strings.Contains(env.logs.String(), "panic while handling request") {
		t.Fatal("panic not logged")
	}
	env.g.snap.Store(good)
	resp, err = env.client.Get(env.base + "/x")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("gateway did not survive: %v", err)
	}
	resp.Body.Close()
}

// TestGracefulDrain: Shutdown waits for a request in flight, which
// completes normally, while new connections are refused.
func TestGracefulDrain(t *testing.T) {
	started := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(500 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	}))
	defer slow.Close()
	env := startGateway(t, baseConfig(slow.URL, ""))
	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := env.client.Get(env.base + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{code: resp.StatusCode, body: string(b)}
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- env.g.Shutdown(context.Background()) }()
	r := <-res
	if r.err != nil || r.code != 200 || r.body != "done" {
		t.Fatalf("in-flight request during drain: %+v", r)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(env.base + "/x"); err == nil {
		t.Fatal("new connection accepted after drain")
	}
}
