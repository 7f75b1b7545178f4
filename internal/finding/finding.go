// Package finding is the one shape every Bulwark result takes — an
// inventory spec-diff result, a behavioural detection, later a posture
// scan — so they can be stored, correlated, reported and exported to a
// SIEM the same way. It imports nothing internal.
package finding

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Severity of a finding, ordered.
type Severity int

// Severities, ordered from least to most severe.
const (
	Info Severity = iota + 1
	Low
	Medium
	High
	Critical
)

var severityNames = map[Severity]string{Info: "info", Low: "low", Medium: "medium", High: "high", Critical: "critical"}

func (s Severity) String() string {
	if n, ok := severityNames[s]; ok {
		return n
	}
	return "unknown"
}

// MarshalText writes the name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name; an unknown one is an error.
func (s *Severity) UnmarshalText(b []byte) error {
	v, ok := ParseSeverity(string(b))
	if !ok {
		return fmt.Errorf("finding: unknown severity %q", b)
	}
	*s = v
	return nil
}

// ParseSeverity is the inverse of String; ok is false for an unknown name.
func ParseSeverity(s string) (Severity, bool) {
	for k, v := range severityNames {
		if v == strings.ToLower(s) {
			return k, true
		}
	}
	return 0, false
}

// Kinds of finding produced by the runtime half.
const (
	KindShadow             = "shadow_endpoint"
	KindZombie             = "zombie_endpoint"
	KindOrphan             = "orphan_endpoint"
	KindUndocumentedParam  = "undocumented_parameter"
	KindUnauthSensitive    = "unauthenticated_sensitive_data"
	KindEnumeration        = "bola_enumeration"
	KindOwnershipAnomaly   = "bola_ownership_anomaly"
	KindCredentialStuffing = "credential_stuffing"
)

// Finding is one result. Evidence holds facts (counts, hashes, sample
// request ids), never raw sensitive values.
type Finding struct {
	// ID is stable for the same fact (kind + subject of the finding), so
	// re-detecting it updates rather than duplicates.
	ID        string            `json:"id"`
	Kind      string            `json:"kind"`
	Severity  Severity          `json:"severity"`
	Title     string            `json:"title"`
	Detail    string            `json:"detail"`
	API       string            `json:"api,omitempty"`
	Endpoint  string            `json:"endpoint,omitempty"` // "METHOD /template"
	Subject   string            `json:"subject,omitempty"`  // identity hash
	Client    string            `json:"client,omitempty"`
	Evidence  map[string]any    `json:"evidence,omitempty"`
	Tags      []string          `json:"tags,omitempty"` // compliance: "pci-dss:6.4.1", "gdpr:32"
	FirstSeen time.Time         `json:"first_seen"`
	LastSeen  time.Time         `json:"last_seen"`
	Count     int               `json:"count"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// MakeID derives a stable id from the kind and the parts that identify
// the fact.
func MakeID(kind string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(kind))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return kind + "-" + hex.EncodeToString(h.Sum(nil)[:8])
}
