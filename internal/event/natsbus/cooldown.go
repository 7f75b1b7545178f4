package natsbus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bulwarkapi/bulwark/internal/detect"
	"github.com/bulwarkapi/bulwark/internal/ratelog"
)

// Cool-downs travel from the collector to the gateways over core NATS,
// not JetStream: a cool-down matters only while it lasts, the collector
// sends its whole active table again every few seconds, and a gateway
// that missed a message (restarted, disconnected, too slow) catches up
// from the next one. Nothing is stored, acknowledged or redelivered.
//
// A message is one JSON object, at most MaxCoolDownMessage bytes:
//
//	{"v":1,"cool_downs":[{"subject":"9f86…","until":"2026-03-01T12:05:00.5Z"},
//	                     {"client":"198.51.100.7","until":"2026-03-01T12:07:10Z"}]}
//
// v is CoolDownVersion; each entry has exactly one of subject (a subject
// hash) and client (an address), and until in RFC 3339 with nanoseconds.

// Defaults and bounds of the cool-down messages.
const (
	// DefaultCoolDownSubject is the core NATS subject of cool-downs. It
	// must not be one of the JetStream stream's subjects, or the stream
	// would store them.
	DefaultCoolDownSubject = "bulwark.cooldowns"
	// CoolDownVersion is the message format's version; a subscriber
	// ignores (and counts as invalid) messages of other versions.
	CoolDownVersion = 1
	// MaxCoolDownMessage is the largest message a subscriber decodes;
	// larger ones are invalid. Publishers cut their batches well below it.
	MaxCoolDownMessage = 512 << 10
	// MaxCoolDownID is the longest subject hash or client address an
	// entry may carry (a subject hash is 32 hex digits, an IPv6 address
	// with a zone under 64 bytes).
	MaxCoolDownID = 256
	// coolDownMessageTarget is the size a publisher fills a message to:
	// half of MaxCoolDownMessage, a quarter of NATS's default max_payload.
	coolDownMessageTarget = MaxCoolDownMessage / 2
	// coolDownPendingMsgs and coolDownPendingBytes bound what a
	// subscriber buffers before NATS drops messages for it (counted in
	// Dropped; the next full table repairs the loss).
	coolDownPendingMsgs  = 1024
	coolDownPendingBytes = 32 << 20
	// coolDownLogEvery rate-limits the subscriber's log of invalid
	// messages.
	coolDownLogEvery = 30 * time.Second
)

// ErrCoolDownMessage is wrapped by every error DecodeCoolDowns returns.
var ErrCoolDownMessage = errors.New("invalid cool-down message")

// coolDownMessage is the wire form; entries are decoded one by one so
// that a bad entry does not spoil the others.
type coolDownMessage struct {
	V         int               `json:"v"`
	CoolDowns []json.RawMessage `json:"cool_downs"`
}

type coolDownEntry struct {
	Subject string `json:"subject,omitempty"`
	Client  string `json:"client,omitempty"`
	Until   string `json:"until"`
}

// entryOf is the wire form of cd, and false when cd cannot be sent:
// neither or both of Subject and Client, an id longer than
// MaxCoolDownID, or no Until.
func entryOf(cd detect.CoolDown) (coolDownEntry, bool) {
	if (cd.Subject == "") == (cd.Client == "") || len(cd.Subject) > MaxCoolDownID || len(cd.Client) > MaxCoolDownID || cd.Until.IsZero() {
		return coolDownEntry{}, false
	}
	return coolDownEntry{Subject: cd.Subject, Client: cd.Client, Until: cd.Until.UTC().Format(time.RFC3339Nano)}, true
}

// EncodeCoolDowns encodes cds as messages of at most limit bytes each
// (coolDownMessageTarget when limit is not positive or larger), skipping
// entries that cannot be sent (see DecodeCoolDowns). It returns no
// message for no entry.
func EncodeCoolDowns(cds []detect.CoolDown, limit int) [][]byte {
	msgs, _ := encodeCoolDowns(cds, limit)
	return msgs
}

// encodeCoolDowns is EncodeCoolDowns, also returning the number of
// entries of each message.
func encodeCoolDowns(cds []detect.CoolDown, limit int) (msgs [][]byte, entries []int) {
	if limit <= 0 || limit > coolDownMessageTarget {
		limit = coolDownMessageTarget
	}
	head := []byte(fmt.Sprintf(`{"v":%d,"cool_downs":[`, CoolDownVersion))
	const tail = "]}"
	var (
		buf bytes.Buffer
		n   int
	)
	flush := func() {
		if n > 0 {
			buf.WriteString(tail)
			msgs = append(msgs, bytes.Clone(buf.Bytes()))
			entries = append(entries, n)
		}
		buf.Reset()
		n = 0
	}
	for _, cd := range cds {
		e, ok := entryOf(cd)
		if !ok {
			continue
		}
		b, err := json.Marshal(e)
		if err != nil {
			continue
		}
		if n > 0 && buf.Len()+1+len(b)+len(tail) > limit {
			flush()
		}
		if n == 0 {
			buf.Write(head)
		} else {
			buf.WriteByte(',')
		}
		buf.Write(b)
		n++
	}
	flush()
	return msgs, entries
}

// DecodeCoolDowns decodes one message. A message that is too large, not
// JSON, or of another version is an error wrapping ErrCoolDownMessage.
// Within a good message, an entry without exactly one of subject and
// client, with an id longer than MaxCoolDownID, or without a valid
// RFC 3339 until is skipped and counted in invalid; an entry that ended
// by now is skipped silently (late, not wrong); an until more than
// detect.MaxCoolDown after now is clamped to now + detect.MaxCoolDown.
func DecodeCoolDowns(data []byte, now time.Time) (cds []detect.CoolDown, invalid int, err error) {
	if len(data) > MaxCoolDownMessage {
		return nil, 0, fmt.Errorf("%w: %d bytes, more than %d", ErrCoolDownMessage, len(data), MaxCoolDownMessage)
	}
	var m coolDownMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrCoolDownMessage, err)
	}
	if m.V != CoolDownVersion {
		return nil, 0, fmt.Errorf("%w: version %d, want %d", ErrCoolDownMessage, m.V, CoolDownVersion)
	}
	limit := now.Add(detect.MaxCoolDown)
	for _, raw := range m.CoolDowns {
		var e coolDownEntry
		if json.Unmarshal(raw, &e) != nil || (e.Subject == "") == (e.Client == "") ||
			len(e.Subject) > MaxCoolDownID || len(e.Client) > MaxCoolDownID {
			invalid++
			continue
		}
		until, perr := time.Parse(time.RFC3339Nano, e.Until)
		if perr != nil {
			invalid++
			continue
		}
		if !until.After(now) {
			continue
		}
		if until.After(limit) {
			until = limit
		}
		cds = append(cds, detect.CoolDown{Subject: e.Subject, Client: e.Client, Until: until.UTC()})
	}
	return cds, invalid, nil
}

// CoolDownOptions configures NewCoolDownPublisher and SubscribeCoolDowns;
// zero fields take defaults.
type CoolDownOptions struct {
	// Subject is the core NATS subject (DefaultCoolDownSubject).
	Subject string
	// Logger receives connection state changes and, at most once per
	// 30s, invalid messages (discarded when nil).
	Logger *slog.Logger
	// Now is the subscriber's clock for expiry and clamping; nil means
	// time.Now.
	Now func() time.Time
}

// CoolDownPublisher publishes cool-downs on core NATS. It is safe for
// concurrent use.
type CoolDownPublisher struct {
	nc      *nats.Conn
	subject string

	published, failed atomic.Uint64
}

// NewCoolDownPublisher connects to the NATS server at url. An unreachable
// server is not an error: the connection keeps trying in the background
// and Publish fails until it is up.
func NewCoolDownPublisher(url string, o CoolDownOptions) (*CoolDownPublisher, error) {
	o.Subject = orDefault(o.Subject, DefaultCoolDownSubject)
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	nc, err := connect(url, "bulwark-cooldown-publisher", o.Logger,
		nats.RetryOnFailedConnect(true),
		// No buffering while disconnected: a publish then fails at once
		// (and is counted); the next full table, once connected, replaces
		// whatever was lost.
		nats.ReconnectBufSize(-1))
	if err != nil {
		return nil, err
	}
	return &CoolDownPublisher{nc: nc, subject: o.Subject}, nil
}

// Publish sends cds in as many messages as their size needs. It never
// waits for the server: core NATS hands the messages to the connection's
// buffer. It returns the first error (not connected, message too large
// for the server); entries of the messages that failed are counted in
// Stats.Failed.
func (p *CoolDownPublisher) Publish(cds []detect.CoolDown) error {
	limit := coolDownMessageTarget
	if mp := p.nc.MaxPayload(); mp > 0 && mp < int64(limit) {
		limit = int(mp)
	}
	var first error
	msgs, entries := encodeCoolDowns(cds, limit)
	for i, msg := range msgs {
		n := uint64(entries[i])
		if err := p.nc.Publish(p.subject, msg); err != nil {
			p.failed.Add(n)
			if first == nil {
				first = fmt.Errorf("natsbus: publish cool-downs on %s: %w", p.subject, err)
			}
			continue
		}
		p.published.Add(n)
	}
	return first
}

// Flush waits until the server has received what was published, or
// timeout passes (for tests and a clean shutdown).
func (p *CoolDownPublisher) Flush(timeout time.Duration) error {
	return p.nc.FlushTimeout(timeout)
}

// CoolDownPublisherStats counts cool-down entries since the publisher
// was made.
type CoolDownPublisherStats struct {
	// Published counts entries handed to the connection.
	Published uint64
	// Failed counts entries of messages that could not be published.
	Failed uint64
}

// Stats returns the counters.
func (p *CoolDownPublisher) Stats() CoolDownPublisherStats {
	return CoolDownPublisherStats{Published: p.published.Load(), Failed: p.failed.Load()}
}

// Close closes the connection after flushing what is buffered (for at
// most a second, and only while connected).
func (p *CoolDownPublisher) Close() error {
	if p.nc.IsConnected() {
		_ = p.nc.FlushTimeout(time.Second)
	}
	p.nc.Close()
	return nil
}

// CoolDownSubscriber receives cool-downs from core NATS and hands each
// message's valid entries to a function.
type CoolDownSubscriber struct {
	nc      *nats.Conn
	sub     *nats.Subscription
	subject string
	apply   func([]detect.CoolDown)
	now     func() time.Time
	log     *slog.Logger

	messages, received, invalid atomic.Uint64

	logLine ratelog.Every // invalid messages
}

// SubscribeCoolDowns connects to the NATS server at url and subscribes to
// the cool-down subject; apply receives the valid, unexpired entries of
// each message, one message at a time, on the subscription's goroutine.
// An unreachable server is not an error: the connection keeps trying in
// the background and the subscription starts once it is up (Connected
// tells).
func SubscribeCoolDowns(url string, o CoolDownOptions, apply func([]detect.CoolDown)) (*CoolDownSubscriber, error) {
	o.Subject = orDefault(o.Subject, DefaultCoolDownSubject)
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	nc, err := connect(url, "bulwark-cooldown-subscriber", o.Logger, nats.RetryOnFailedConnect(true))
	if err != nil {
		return nil, err
	}
	s := &CoolDownSubscriber{nc: nc, subject: o.Subject, apply: apply, now: o.Now, log: o.Logger,
		logLine: ratelog.Every{Interval: coolDownLogEvery}}
	sub, err := nc.Subscribe(o.Subject, s.handle)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbus: subscribe to %s: %w", o.Subject, err)
	}
	if err := sub.SetPendingLimits(coolDownPendingMsgs, coolDownPendingBytes); err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbus: subscription limits: %w", err)
	}
	s.sub = sub
	return s, nil
}

// handle decodes one message and applies its entries.
func (s *CoolDownSubscriber) handle(m *nats.Msg) {
	s.messages.Add(1)
	cds, invalid, err := DecodeCoolDowns(m.Data, s.now())
	if err != nil {
		s.invalid.Add(1)
		s.logInvalid(err)
		return
	}
	if invalid > 0 {
		s.invalid.Add(uint64(invalid))
		s.logInvalid(fmt.Errorf("%d invalid entries skipped", invalid))
	}
	if len(cds) > 0 {
		s.received.Add(uint64(len(cds)))
		s.apply(cds)
	}
}

// logInvalid logs at most once per coolDownLogEvery, with the number of
// invalid messages since the last line.
func (s *CoolDownSubscriber) logInvalid(err error) {
	if n, ok := s.logLine.Tick(time.Now(), 1); ok {
		s.log.Warn("natsbus: invalid cool-down messages ignored", "subject", s.subject, "count", n, "last_error", err.Error())
	}
}

// Connected reports whether the connection is up now.
func (s *CoolDownSubscriber) Connected() bool { return s.nc.IsConnected() }

// CoolDownSubscriberStats counts what a subscriber received.
type CoolDownSubscriberStats struct {
	// Messages counts messages received.
	Messages uint64
	// Received counts valid, unexpired entries handed to apply.
	Received uint64
	// Invalid counts invalid entries and undecodable messages.
	Invalid uint64
	// Dropped counts messages NATS dropped because the subscriber fell
	// behind.
	Dropped uint64
}

// Stats returns the counters.
func (s *CoolDownSubscriber) Stats() CoolDownSubscriberStats {
	st := CoolDownSubscriberStats{Messages: s.messages.Load(), Received: s.received.Load(), Invalid: s.invalid.Load()}
	if n, err := s.sub.Dropped(); err == nil && n > 0 {
		st.Dropped = uint64(n)
	}
	return st
}

// Close ends the subscription and the connection.
func (s *CoolDownSubscriber) Close() error {
	_ = s.sub.Unsubscribe()
	s.nc.Close()
	return nil
}
