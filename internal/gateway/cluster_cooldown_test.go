package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/testkit/cutproxy"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulwarkapi/bulwark/internal/detect"
	"github.com/bulwarkapi/bulwark/internal/event/natsbus"
)

// TestClusterCoolDownsEnforced: a gateway in a cluster (cluster.nats_url)
// with detect.mode enforce refuses a caller the collector put on
// cool-down over NATS with 429 cool_down and Retry-After, counts what it
// received in its metrics, and keeps enforcing after losing NATS.
func TestClusterCoolDownsEnforced(t *testing.T) {
	natsURL := os.Getenv("BULWARK_TEST_NATS_URL")
	if natsURL == "" {
		t.Skip("BULWARK_TEST_NATS_URL not set: skipping the cluster cool-down test")
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	stream, subject, coolSubject := "GWTEST_"+strings.ToUpper(run), "gwtest."+run, "gwtest."+run+".cooldowns"
	t.Cleanup(func() { deleteTestStream(t, natsURL, stream) })
	up := newEcho(t, "a")
	extra := fmt.Sprintf("cluster: {nats_url: %q, nats_stream: %s, nats_subject: %s, nats_cooldown_subject: %s}\ndetect: {mode: enforce}\n",
		natsURL, stream, subject, coolSubject)
	env := startGateway(t, baseConfig(up.srv.URL, extra))

	get := func() *http.Response {
		t.Helper()
		resp, err := env.client.Get(env.base + "/accounts/1")
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get()
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("before any cool-down: %d", resp.StatusCode)
	}

	pub, err := natsbus.NewCoolDownPublisher(natsURL, natsbus.CoolDownOptions{Subject: coolSubject})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	until := time.Now().Add(time.Minute)
	// The client address of these requests, and an identity of nobody
	// here: only the address matters.
	cds := []detect.CoolDown{{Client: "127.0.0.1", Until: until}, {Subject: "0123456789abcdef0123456789abcdef", Until: until}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Published again each round, as the collector's refresh does:
		// the first may precede the gateway's subscription.
		_ = pub.Publish(cds)
		resp = get()
		if resp.StatusCode == http.StatusTooManyRequests {
			break
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no cool-down 10s after publishing it: %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := decodeProblem(t, resp)
	resp.Body.Close()
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if p.Reason != "cool_down" || err != nil || secs < 1 || secs > 61 {
		t.Fatalf("refusal: reason %q, Retry-After %q", p.Reason, resp.Header.Get("Retry-After"))
	}

	req, _ := http.NewRequest(http.MethodGet, env.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	mresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	metrics := string(body)
	if !strings.Contains(metrics, "bulwark_cooldowns_active 2") || !strings.Contains(metrics, "bulwark_cooldowns_invalid_total 0") ||
		strings.Contains(metrics, "bulwark_cooldowns_received_total 0") || !strings.Contains(metrics, "bulwark_cooldowns_received_total") {
		t.Errorf("cool-down metrics:\n%s", grepLines(metrics, "bulwark_cooldowns_"))
	}

	// NATS gone: the table keeps what it has until each entry ends.
	_ = env.g.events.coolSub.Close()
	resp = get()
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after losing NATS: %d, want the cool-down kept", resp.StatusCode)
	}
}

// TestClusterGatewayStartsWithoutNATS: a cluster gateway whose NATS does
// not answer at start serves anyway, drops and counts its events, and
// publishes them once NATS answers.
func TestClusterGatewayStartsWithoutNATS(t *testing.T) {
	natsURL := os.Getenv("BULWARK_TEST_NATS_URL")
	if natsURL == "" {
		t.Skip("BULWARK_TEST_NATS_URL not set: skipping the NATS outage test")
	}
	u, err := url.Parse(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	px := cutproxy.New(t, u.Host)
	px.Cut()
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	stream, subject := "GWDOWN_"+strings.ToUpper(run), "gwdown."+run
	t.Cleanup(func() { deleteTestStream(t, natsURL, stream) })
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, fmt.Sprintf("cluster: {nats_url: %q, nats_stream: %s, nats_subject: %s}\n",
		"nats://"+px.Addr(), stream, subject)))
	get := func() {
		t.Helper()
		resp, err := env.client.Get(env.base + "/accounts/1")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d while NATS is down", resp.StatusCode)
		}
	}
	for range 5 {
		get()
	}
	dropped := func() float64 { return metricValue(scrapeMetrics(t, env), "bulwark_events_dropped_total") }
	deadline := time.Now().Add(10 * time.Second)
	for dropped() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("dropped events never counted: %v", dropped())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(env.logs.String(), "NATS does not answer") {
		t.Errorf("no log line for the unreachable NATS:\n%s", env.logs.String())
	}

	// NATS answers again: the next events reach the stream.
	px.Restore()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		get()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := js.Stream(ctx, stream)
		var msgs uint64
		if err == nil {
			if info, err := st.Info(ctx); err == nil {
				msgs = info.State.Msgs
			}
		}
		cancel()
		if msgs > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event reached stream %s after NATS came back", stream)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// metricValue is the value of an unlabelled metric in /metrics text, or -1.
func metricValue(text, name string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return f
			}
		}
	}
	return -1
}

// scrapeMetrics returns the admin listener's /metrics text.
func scrapeMetrics(t *testing.T, env *gwEnv) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// deleteTestStream removes a test's JetStream stream.
func deleteTestStream(t *testing.T, natsURL, stream string) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return
	}
	defer nc.Close()
	if js, err := jetstream.New(nc); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("delete stream %s: %v", stream, err)
		}
	}
}
