package natsbus

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bulwarkapi/bulwark/internal/detect"
)

// coolNow is the clock of the decoding tests.
var coolNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func rfc(t time.Time) string { return t.Format(time.RFC3339Nano) }

func TestDecodeCoolDowns(t *testing.T) {
	in5m := coolNow.Add(5 * time.Minute)
	for _, tc := range []struct {
		name    string
		data    string
		want    []detect.CoolDown
		invalid int
		err     bool
	}{
		{
			name: "subject and client",
			data: `{"v":1,"cool_downs":[{"subject":"ab12","until":"` + rfc(in5m) + `"},{"client":"198.51.100.7","until":"2026-03-01T12:01:00.5+01:00"}]}`,
			// +01:00: 11:01:00.5Z, ended: skipped, not invalid.
			want: []detect.CoolDown{{Subject: "ab12", Until: in5m}},
		},
		{
			name: "a client with a zone offset",
			data: `{"v":1,"cool_downs":[{"client":"2001:db8::1","until":"2026-03-01T14:00:00+01:00"}]}`,
			want: []detect.CoolDown{{Client: "2001:db8::1", Until: coolNow.Add(time.Hour)}},
		},
		{
			name: "until clamped to MaxCoolDown",
			data: `{"v":1,"cool_downs":[{"subject":"ab12","until":"2999-01-01T00:00:00Z"}]}`,
			want: []detect.CoolDown{{Subject: "ab12", Until: coolNow.Add(detect.MaxCoolDown)}},
		},
		{
			name: "bad entries skipped and counted, good ones kept",
			data: `{"v":1,"cool_downs":[
				{"until":"` + rfc(in5m) + `"},
				{"subject":"a","client":"b","until":"` + rfc(in5m) + `"},
				{"subject":"a","until":"yesterday"},
				{"subject":"a"},
				{"subject":7,"until":"` + rfc(in5m) + `"},
				"not an object",
				null,
				{"subject":"` + strings.Repeat("x", MaxCoolDownID+1) + `","until":"` + rfc(in5m) + `"},
				{"client":"10.0.0.1","until":"` + rfc(in5m) + `","extra":true}]}`,
			want:    []detect.CoolDown{{Client: "10.0.0.1", Until: in5m}},
			invalid: 8,
		},
		{name: "ending now is over", data: `{"v":1,"cool_downs":[{"subject":"a","until":"` + rfc(coolNow) + `"}]}`},
		{name: "no entries", data: `{"v":1,"cool_downs":[]}`},
		{name: "no list", data: `{"v":1}`},
		{name: "another version", data: `{"v":2,"cool_downs":[{"subject":"a","until":"` + rfc(in5m) + `"}]}`, err: true},
		{name: "no version", data: `{"cool_downs":[{"subject":"a","until":"` + rfc(in5m) + `"}]}`, err: true},
		{name: "not JSON", data: `{"v":1,"cool_downs":[`, err: true},
		{name: "empty", data: ``, err: true},
		{name: "a list", data: `[1,2]`, err: true},
		{name: "cool_downs not a list", data: `{"v":1,"cool_downs":{"subject":"a"}}`, err: true},
		{name: "too large", data: `{"v":1,"cool_downs":[],"pad":"` + strings.Repeat("x", MaxCoolDownMessage) + `"}`, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, invalid, err := DecodeCoolDowns([]byte(tc.data), coolNow)
			if tc.err {
				if err == nil || !errors.Is(err, ErrCoolDownMessage) {
					t.Fatalf("err %v, want ErrCoolDownMessage", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if invalid != tc.invalid {
				t.Errorf("invalid %d, want %d", invalid, tc.invalid)
			}
			if !equalCoolDowns(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func equalCoolDowns(a, b []detect.CoolDown) bool {
	return slices.EqualFunc(a, b, func(x, y detect.CoolDown) bool {
		return x.Subject == y.Subject && x.Client == y.Client && x.Until.Equal(y.Until)
	})
}

// TestEncodeCoolDowns: batches split below the limit, unsendable entries
// left out, and everything decodes back.
func TestEncodeCoolDowns(t *testing.T) {
	if msgs := EncodeCoolDowns(nil, 0); msgs != nil {
		t.Fatalf("no entries: %q", msgs)
	}
	var cds, want []detect.CoolDown
	for i := range 3000 {
		cd := detect.CoolDown{Subject: fmt.Sprintf("%032x", i), Until: coolNow.Add(time.Duration(i+1) * time.Second)}
		if i%3 == 1 {
			cd = detect.CoolDown{Client: fmt.Sprintf("2001:db8::%x", i), Until: cd.Until}
		}
		cds = append(cds, cd)
		want = append(want, cd)
	}
	cds = append(cds,
		detect.CoolDown{Until: coolNow.Add(time.Hour)},                                                // neither
		detect.CoolDown{Subject: "a", Client: "b", Until: coolNow.Add(time.Hour)},                     // both
		detect.CoolDown{Subject: "a"},                                                                 // no end
		detect.CoolDown{Subject: strings.Repeat("y", MaxCoolDownID+1), Until: coolNow.Add(time.Hour)}, // too long
	)
	for _, limit := range []int{0, 4096, 1 << 30} {
		msgs := EncodeCoolDowns(cds, limit)
		bound := limit
		if bound <= 0 || bound > coolDownMessageTarget {
			bound = coolDownMessageTarget
		}
		var got []detect.CoolDown
		for _, m := range msgs {
			if len(m) > bound {
				t.Fatalf("limit %d: a message of %d bytes", limit, len(m))
			}
			cd, invalid, err := DecodeCoolDowns(m, coolNow)
			if err != nil || invalid != 0 {
				t.Fatalf("limit %d: decode: %v, %d invalid", limit, err, invalid)
			}
			got = append(got, cd...)
		}
		if !equalCoolDowns(got, want) {
			t.Fatalf("limit %d: %d entries in %d messages, want %d back", limit, len(got), len(msgs), len(want))
		}
		if limit == 4096 && len(msgs) < 10 {
			t.Errorf("limit 4096: only %d messages", len(msgs))
		}
	}
}

// testNATS returns the test server's URL and a subject unique to this
// test, or skips.
func testNATS(t *testing.T) (url, subject string) {
	t.Helper()
	u := os.Getenv(natsURLEnv)
	if u == "" {
		t.Skip(natsURLEnv + " not set: skipping the NATS cool-down tests")
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return u, "bulwark.test.cooldowns." + hex.EncodeToString(b)
}

// collected gathers what a subscriber applies.
type collected struct {
	mu  sync.Mutex
	cds []detect.CoolDown
}

func (c *collected) apply(cds []detect.CoolDown) {
	c.mu.Lock()
	c.cds = append(c.cds, cds...)
	c.mu.Unlock()
}

func (c *collected) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cds)
}

// TestCoolDownsOverNATS: what the publisher sends reaches every
// subscriber of the subject, split into several messages when large;
// invalid messages are counted and ignored.
func TestCoolDownsOverNATS(t *testing.T) {
	url, subject := testNATS(t)
	now := time.Now()
	var subs []*CoolDownSubscriber
	var got []*collected
	for range 2 {
		c := &collected{}
		s, err := SubscribeCoolDowns(url, CoolDownOptions{Subject: subject}, c.apply)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		if err := s.nc.FlushTimeout(testWait); err != nil { // the subscription is registered
			t.Fatal(err)
		}
		subs, got = append(subs, s), append(got, c)
	}
	p, err := NewCoolDownPublisher(url, CoolDownOptions{Subject: subject})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	waitFor(t, "the publisher to connect", p.nc.IsConnected)

	var cds []detect.CoolDown
	for i := range 5000 {
		cds = append(cds, detect.CoolDown{Subject: fmt.Sprintf("%032x", i), Until: now.Add(time.Minute)})
	}
	cds = append(cds, detect.CoolDown{Client: "198.51.100.7", Until: now.Add(2 * time.Minute)})
	if err := p.Publish(cds); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(testWait); err != nil {
		t.Fatal(err)
	}
	for i, c := range got {
		waitFor(t, fmt.Sprintf("subscriber %d to receive 5001 cool-downs", i), func() bool { return c.len() == 5001 })
		st := subs[i].Stats()
		if st.Received != 5001 || st.Invalid != 0 || st.Messages < 2 {
			t.Errorf("subscriber %d stats %+v: want 5001 received in several messages", i, st)
		}
	}
	if st := p.Stats(); st.Published != 5001 || st.Failed != 0 {
		t.Errorf("publisher stats %+v", st)
	}

	// A stranger publishes junk and a half-valid message on the subject.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(nc.Publish(subject, []byte("junk")))
	must(nc.Publish(subject, []byte(`{"v":1,"cool_downs":[{"subject":"x"},{"subject":"late","until":"`+rfc(now.Add(time.Hour))+`"}]}`)))
	must(nc.Flush())
	waitFor(t, "the junk to be counted", func() bool { return subs[0].Stats().Invalid == 2 })
	waitFor(t, "the valid entry to be applied", func() bool { return got[0].len() == 5002 })
	if st := subs[0].Stats(); st.Received != 5002 {
		t.Errorf("stats after junk %+v", st)
	}
}

// TestCoolDownsNATSUnreachable: with no server, the subscriber and the
// publisher are still made (they connect in the background); publishing
// fails at once and is counted, nothing blocks.
func TestCoolDownsNATSUnreachable(t *testing.T) {
	ln := "nats://127.0.0.1:1" // nothing listens on port 1
	s, err := SubscribeCoolDowns(ln, CoolDownOptions{}, func([]detect.CoolDown) { t.Error("applied without a server") })
	if err != nil {
		t.Fatalf("subscribe without a server: %v", err)
	}
	defer s.Close()
	if s.Connected() {
		t.Fatal("connected to nothing")
	}
	p, err := NewCoolDownPublisher(ln, CoolDownOptions{})
	if err != nil {
		t.Fatalf("publisher without a server: %v", err)
	}
	defer p.Close()
	start := time.Now()
	err = p.Publish([]detect.CoolDown{{Subject: "a", Until: time.Now().Add(time.Minute)}, {Client: "10.0.0.1", Until: time.Now().Add(time.Minute)}})
	if err == nil {
		t.Fatal("publishing without a server succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a failed publish took %s", d)
	}
	if st := p.Stats(); st.Failed != 2 || st.Published != 0 {
		t.Errorf("stats %+v, want 2 failed", st)
	}
}

// FuzzDecodeCoolDowns: any input decodes without panicking into entries
// that are valid, unexpired and within MaxCoolDown, and that encode and
// decode back unchanged. The seed corpus is in
// testdata/fuzz/FuzzDecodeCoolDowns.
func FuzzDecodeCoolDowns(f *testing.F) {
	f.Add([]byte(`{"v":1,"cool_downs":[{"subject":"ab12","until":"2026-03-01T12:05:00Z"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cds, invalid, err := DecodeCoolDowns(data, coolNow)
		if err != nil {
			if cds != nil || invalid != 0 || !errors.Is(err, ErrCoolDownMessage) {
				t.Fatalf("error %v with %d entries and %d invalid", err, len(cds), invalid)
			}
			return
		}
		if invalid < 0 || len(cds)+invalid > len(data) {
			t.Fatalf("%d entries, %d invalid from %d bytes", len(cds), invalid, len(data))
		}
		for _, cd := range cds {
			if (cd.Subject == "") == (cd.Client == "") || len(cd.Subject) > MaxCoolDownID || len(cd.Client) > MaxCoolDownID {
				t.Fatalf("invalid entry %+v", cd)
			}
			if !cd.Until.After(coolNow) || cd.Until.After(coolNow.Add(detect.MaxCoolDown)) {
				t.Fatalf("until %v out of (now, now+%s]", cd.Until, detect.MaxCoolDown)
			}
		}
		var back []detect.CoolDown
		for _, m := range EncodeCoolDowns(cds, 0) {
			got, inv, err := DecodeCoolDowns(m, coolNow)
			if err != nil || inv != 0 {
				t.Fatalf("re-decode: %v, %d invalid", err, inv)
			}
			back = append(back, got...)
		}
		if !equalCoolDowns(back, cds) {
			t.Fatalf("round trip: %+v, want %+v", back, cds)
		}
	})
}
