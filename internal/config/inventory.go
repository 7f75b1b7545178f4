package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Inventory configures the living API inventory fed by every exchange.
type Inventory struct {
	// Disabled turns the inventory (and the detectors) off.
	Disabled bool `yaml:"disabled"`
	// InternalNetworks are the client networks counted as east-west
	// (internal) traffic; everything else is north-south (external).
	InternalNetworks []string `yaml:"internal_networks"`
	// PathHints are templates ("/customers/{customerId}") that take
	// precedence over learned ones for paths no spec covers.
	PathHints []string `yaml:"path_hints"`
	// Retention is how long endpoints and findings not seen again are kept.
	Retention Duration `yaml:"retention"`
	// OrphanWindow: a spec operation without traffic for this long is an orphan.
	OrphanWindow Duration `yaml:"orphan_window"`
	// FlushInterval is how often the inventory is written to the store.
	FlushInterval Duration `yaml:"flush_interval"`
	// Bodies says what is learned from bodies.
	Bodies InventoryBodies `yaml:"bodies"`
}

// InventoryBodies says what the inventory and the detectors learn from
// JSON bodies. Only types, names and hashes are kept, never values.
type InventoryBodies struct {
	// Schemas learns the type-only shape of request and response bodies
	// from a sample of each endpoint's exchanges (for the inventory and
	// `inventory export`). Default true.
	Schemas *bool `yaml:"schemas"`
	// SampleFirst exchanges of each endpoint are sampled, then one in
	// SampleEvery.
	SampleFirst int `yaml:"sample_first"`
	SampleEvery int `yaml:"sample_every"`
	// ReturnedIDs hashes the object ids of every successful JSON response
	// to an authenticated caller, so the ownership detector learns who
	// was shown which object. Default true.
	ReturnedIDs *bool `yaml:"returned_ids"`
}

// SchemasOn and ReturnedIDsOn are the two switches with their defaults.
func (b InventoryBodies) SchemasOn() bool     { return b.Schemas == nil || *b.Schemas }
func (b InventoryBodies) ReturnedIDsOn() bool { return b.ReturnedIDs == nil || *b.ReturnedIDs }

// Detect configures the behavioural detectors over the event stream.
type Detect struct {
	// Mode: monitor (default) records findings; enforce also puts a
	// flagged identity or address on a cool-down (429) for CoolDown.
	Mode string `yaml:"mode"`
	// Window is the detectors' sliding window.
	Window Duration `yaml:"window"`
	// MaxDistinctObjects per identity and operation in Window above which
	// object access is enumeration.
	MaxDistinctObjects int `yaml:"max_distinct_objects"`
	// MinSequentialSteps: one identity stepping onto this many new
	// adjacent object ids (acc-1041, acc-1042, ...) on one operation in
	// Window is enumeration too.
	MinSequentialSteps int `yaml:"min_sequential_steps"`
	// CoolDown is how long an identity or address flagged in enforce mode
	// is refused.
	CoolDown Duration `yaml:"cool_down"`
	// FindingsFile receives each new or updated finding as one OCSF
	// Detection Finding JSON line (for a SIEM's file collector); "" for none.
	FindingsFile string `yaml:"findings_file"`
	// FindingsWebhook receives new and updated findings as POSTs of OCSF
	// JSON arrays (a SIEM's HTTP collector); nil for none.
	FindingsWebhook *FindingsWebhook `yaml:"findings_webhook"`
}

// FindingsWebhook is a SIEM's HTTP endpoint for findings.
type FindingsWebhook struct {
	// URL: https, or http to a loopback address only.
	URL string `yaml:"url"`
	// Token is sent as "Authorization: <Scheme> <Token>" when set.
	Token  string `yaml:"token"`
	Scheme string `yaml:"scheme"`
	// Timeout bounds one POST.
	Timeout Duration `yaml:"timeout"`
}

// DefaultWebhookTimeout bounds one POST of findings.
const DefaultWebhookTimeout = 5 * time.Second

// Privacy says how personal data is pseudonymised.
type Privacy struct {
	// PseudonymSecret keys the hashes recorded instead of subjects,
	// usernames and object ids (HMAC-SHA256; package pseudo). Every
	// gateway and collector of a deployment must share it. Empty: plain
	// SHA-256, with a warning.
	PseudonymSecret string `yaml:"pseudonym_secret"`
}

// MinPseudonymSecret is the shortest pseudonym secret accepted.
const MinPseudonymSecret = 32

// Inventory and detection defaults, each with its reason.
const (
	// DefaultRetention: a month of history covers monthly batch callers.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultOrphanWindow: a week without a call is a documented operation
	// nobody uses; shorter would flag monthly jobs, longer hides dead code.
	DefaultOrphanWindow = 7 * 24 * time.Hour
	// DefaultInventoryFlush: the store lags live traffic by a few seconds
	// at most, and one transaction per interval keeps SQLite cheap.
	DefaultInventoryFlush = 5 * time.Second
	// DefaultDetectWindow: enumeration scripts walk ids within seconds; a
	// minute holds a slow walk and forgets a normal session quickly.
	DefaultDetectWindow = time.Minute
	// DefaultMaxDistinctObjects: a customer has a handful of accounts and
	// cards; twenty distinct ids of one kind in a minute is a walk.
	DefaultMaxDistinctObjects = 20
	// DefaultSampleFirst and DefaultSampleEvery: ten bodies give an
	// endpoint its shape at once, and one in a hundred after that follows
	// changes at a hundredth of the cost of reading every body.
	DefaultSampleFirst = 10
	DefaultSampleEvery = 100
	// DefaultMinSequentialSteps: ten new ids in a row, each next to the
	// last, is a script counting; people open what a list shows them.
	DefaultMinSequentialSteps = 10
	// DefaultCoolDown: long enough to stop a script, short enough that a
	// false positive costs a customer minutes.
	DefaultCoolDown = 5 * time.Minute
)

// DefaultInternalNetworks are the private and loopback ranges.
var DefaultInternalNetworks = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "fc00::/7", "::1/128"}

func (c *Config) inventoryDefaults() {
	inv := &c.Inventory
	if inv.InternalNetworks == nil {
		inv.InternalNetworks = append([]string(nil), DefaultInternalNetworks...)
	}
	setDur(&inv.Retention, DefaultRetention)
	setDur(&inv.OrphanWindow, DefaultOrphanWindow)
	setDur(&inv.FlushInterval, DefaultInventoryFlush)
	if inv.Bodies.SampleFirst == 0 {
		inv.Bodies.SampleFirst = DefaultSampleFirst
	}
	if inv.Bodies.SampleEvery == 0 {
		inv.Bodies.SampleEvery = DefaultSampleEvery
	}
	d := &c.Detect
	if d.Mode == "" {
		d.Mode = "monitor"
	}
	setDur(&d.Window, DefaultDetectWindow)
	if d.MaxDistinctObjects == 0 {
		d.MaxDistinctObjects = DefaultMaxDistinctObjects
	}
	if d.MinSequentialSteps == 0 {
		d.MinSequentialSteps = DefaultMinSequentialSteps
	}
	setDur(&d.CoolDown, DefaultCoolDown)
	if w := d.FindingsWebhook; w != nil {
		setDur(&w.Timeout, DefaultWebhookTimeout)
		if w.Scheme == "" {
			w.Scheme = "Bearer"
		}
	}
}

func (c *Config) validatePrivacy(add, warn func(string, string, ...any)) {
	switch n := len(c.Privacy.PseudonymSecret); {
	case n == 0:
		warn("privacy.pseudonym_secret", "not set: subject, username and object-id hashes are plain SHA-256, which anyone can recompute from a guess; set a secret of at least %d bytes (openssl rand -hex 32)", MinPseudonymSecret)
	case n < MinPseudonymSecret:
		add("privacy.pseudonym_secret", "must be at least %d bytes, got %d (openssl rand -hex 32 makes one)", MinPseudonymSecret, n)
	}
}

func (c *Config) validateInventory(add func(string, string, ...any)) {
	for i, s := range c.Inventory.InternalNetworks {
		if _, err := ParsePrefix(s); err != nil {
			add(fmt.Sprintf("inventory.internal_networks[%d]", i), "%v", err)
		}
	}
	for i, h := range c.Inventory.PathHints {
		if !strings.HasPrefix(h, "/") || strings.ContainsAny(h, "?# ") {
			add(fmt.Sprintf("inventory.path_hints[%d]", i), "must be a path template such as /customers/{customerId}, got %q", clip(h))
		}
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"inventory.retention", c.Inventory.Retention}, {"inventory.orphan_window", c.Inventory.OrphanWindow},
		{"inventory.flush_interval", c.Inventory.FlushInterval}, {"detect.window", c.Detect.Window}, {"detect.cool_down", c.Detect.CoolDown}} {
		if d.v <= 0 {
			add(d.key, "must be positive")
		}
	}
	if c.Inventory.Bodies.SampleFirst < 0 {
		add("inventory.bodies.sample_first", "must not be negative")
	}
	if c.Inventory.Bodies.SampleEvery < 0 {
		add("inventory.bodies.sample_every", "must not be negative")
	}
	checkMode(add, "detect.mode", c.Detect.Mode)
	if c.Detect.MaxDistinctObjects < 2 {
		add("detect.max_distinct_objects", "must be at least 2")
	}
	if w := c.Detect.FindingsWebhook; w != nil {
		if u, err := url.Parse(w.URL); err != nil || u.Host == "" || u.User != nil ||
			!(u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
			add("detect.findings_webhook.url", "must be https://HOST/PATH (http:// only to a loopback address), without credentials; got %q", clip(redactURL(w.URL)))
		}
		if w.Timeout <= 0 {
			add("detect.findings_webhook.timeout", "must be positive")
		}
		if strings.ContainsAny(w.Scheme, " \t\r\n") {
			add("detect.findings_webhook.scheme", "must be one word (Bearer, Splunk), got %q", clip(w.Scheme))
		}
		if strings.ContainsAny(w.Token, "\r\n") {
			add("detect.findings_webhook.token", "must not hold a line break")
		}
	}
	if c.Detect.MinSequentialSteps < 2 {
		add("detect.min_sequential_steps", "must be at least 2")
	}
}

// isLoopbackHost reports whether host is localhost or a loopback address.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
