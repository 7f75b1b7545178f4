// Package apikey authenticates API keys presented in a header (or, where
// configured, a query parameter). The configuration holds only the SHA-256
// digest of each key; a presented key is hashed and compared with every
// configured digest in constant time.
package apikey

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
)

// MaxKeyBytes bounds a presented key. Real API keys are 32-128 bytes; a
// longer value is refused before it is hashed, so that a client cannot make
// the gateway hash megabytes per request.
const MaxKeyBytes = 512

// Reasons recorded in the audit log.
const (
	ReasonMultiple = "api_key_multiple"
	ReasonTooLarge = "api_key_too_large"
	ReasonEmpty    = "api_key_empty"
	ReasonUnknown  = "unknown_api_key"
)

// Provider is one configured set of API keys. It is immutable after New and
// safe for concurrent use.
type Provider struct {
	name   string
	header string
	query  string
	keys   []key
}

// key is one configured key: its digest and the identity it maps to, built
// once and shared by every request (identities are immutable).
type key struct {
	digest [sha256.Size]byte
	id     *identity.Identity
}

var _ identity.Provider = (*Provider)(nil)

// New builds a provider from validated configuration, decoding every digest
// once.
func New(name string, c config.APIKeyProvider) (*Provider, error) {
	p := &Provider{name: name, header: c.Header, query: c.Query}
	var errs []error
	for i, k := range c.Keys {
		b, err := hex.DecodeString(k.SHA256)
		if err == nil && len(b) != sha256.Size {
			err = fmt.Errorf("%d bytes, want %d", len(b), sha256.Size)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("api_key provider %s: keys[%d] (%s): sha256: %w", name, i, k.ID, err))
			continue
		}
		var d [sha256.Size]byte
		copy(d[:], b)
		p.keys = append(p.keys, key{digest: d, id: &identity.Identity{
			Subject:  k.ID,
			Provider: name,
			Kind:     identity.KindAPIKey,
			Scopes:   slices.Clone(k.Scopes),
			Roles:    slices.Clone(k.Roles),
			Tenant:   k.Tenant,
		}})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// Name is the configured provider name.
func (p *Provider) Name() string { return p.name }

// Kind is identity.KindAPIKey.
func (p *Provider) Kind() identity.Kind { return identity.KindAPIKey }

// Header is the header that carries the key ("" when only the query may).
func (p *Provider) Header() string { return p.header }

// QueryParam is the query parameter that may carry the key ("" when not
// configured). The authenticate stage may strip it before proxying so that
// the key does not reach upstream access logs.
func (p *Provider) QueryParam() string { return p.query }

// FromQuery reports whether the API key of r is taken from the configured
// query parameter rather than the header: the inventory flags operations
// called that way, because keys in URLs end up in logs and browser history.
// It looks only at where the key is, not whether it is valid.
func (p *Provider) FromQuery(r *identity.Request) bool {
	if p.query == "" || len(r.Query[p.query]) == 0 {
		return false
	}
	return p.header == "" || len(r.Header.Values(p.header)) == 0
}

// Authenticate verifies the API key of r. It returns identity.ErrNoCredential
// when r carries no key in the configured header or query parameter.
//
// A key in both the header and the query parameter, or twice in either, is
// refused (api_key_multiple) rather than one of them picked: the two places
// may disagree, and whichever is ignored still leaks.
func (p *Provider) Authenticate(_ context.Context, r *identity.Request) (*identity.Identity, error) {
	var vals []string
	if p.header != "" {
		vals = r.Header.Values(p.header)
	}
	if p.query != "" {
		vals = append(vals[:len(vals):len(vals)], r.Query[p.query]...)
	}
	switch {
	case len(vals) == 0:
		return nil, identity.ErrNoCredential
	case len(vals) > 1:
		return nil, &identity.Error{Code: identity.CodeInvalidRequest, Reason: ReasonMultiple, Detail: "more than one API key presented"}
	case vals[0] == "":
		return nil, &identity.Error{Code: identity.CodeInvalidRequest, Reason: ReasonEmpty, Detail: "empty API key"}
	case len(vals[0]) > MaxKeyBytes:
		return nil, &identity.Error{Code: identity.CodeInvalidRequest, Reason: ReasonTooLarge, Detail: "API key too large"}
	}
	if id := p.lookup(vals[0]); id != nil {
		return id, nil
	}
	return nil, identity.Fail(ReasonUnknown, "unknown API key", nil)
}

// lookup returns the identity of the key whose digest equals SHA-256 of
// presented, or nil.
//
// Timing: the presented key is hashed once, then compared with EVERY
// configured digest by subtle.ConstantTimeCompare; the loop never exits
// early and the match is selected with subtle.ConstantTimeSelect, so the
// time taken depends on the number of keys only, not on which key (if any)
// matched or how many leading bytes agreed. Comparing digests rather than
// keys also means the compared values are not attacker-chosen prefixes of a
// secret.
func (p *Provider) lookup(presented string) *identity.Identity {
	d := sha256.Sum256([]byte(presented))
	match := -1
	for i := range p.keys {
		eq := subtle.ConstantTimeCompare(d[:], p.keys[i].digest[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return nil
	}
	return p.keys[match].id
}
