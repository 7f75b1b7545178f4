package gateway

import (
	"net/http"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds how many entries of a forwarding header are
// examined: a chain of proxies is a handful long, and a hostile header
// with thousands of entries must not cost more than a few.
const maxForwardedHops = 32

// clientAddrs resolves the client address of a request from the TCP peer
// and, only when the peer is a trusted proxy, the configured forwarding
// header. The zero value trusts nobody.
type clientAddrs struct {
	trusted   []netip.Prefix
	forwarded bool // the header is RFC 7239 Forwarded rather than X-Forwarded-For
}

// resolve returns the client address and whether it came from a header.
//
// The header is read from right to left, the order in which proxies
// appended to it: entries added by trusted proxies are skipped, and the
// first untrusted address is the client. Everything to its left was
// written by the client or by proxies we do not trust and is ignored, so
// prepending a spoofed address gains nothing. When every entry is
// trusted the leftmost is taken; an unparsable entry ends the walk at the
// last good address (or the peer), never at the client's word.
func (c *clientAddrs) resolve(peer netip.Addr, h http.Header) (netip.Addr, bool) {
	peer = peer.Unmap()
	if len(c.trusted) == 0 || !peer.IsValid() || !c.isTrusted(peer) {
		return peer, false
	}
	var values []string
	if c.forwarded {
		values = h.Values("Forwarded")
	} else {
		values = h.Values("X-Forwarded-For")
	}
	client, hops := peer, 0
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			if hops++; hops > maxForwardedHops {
				return client, client != peer
			}
			var entry string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				entry, v = v, ""
			}
			a, ok := c.parse(entry)
			if !ok {
				return client, client != peer
			}
			client = a
			if !c.isTrusted(a) {
				return client, true
			}
		}
	}
	return client, client != peer
}

func (c *clientAddrs) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parse reads one entry: a bare address (X-Forwarded-For, with an
// optional port) or a Forwarded element's for= parameter.
func (c *clientAddrs) parse(entry string) (netip.Addr, bool) {
	entry = strings.TrimSpace(entry)
	if c.forwarded {
		found := false
		for _, pair := range strings.Split(entry, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if ok && strings.EqualFold(k, "for") {
				entry, found = strings.Trim(v, `"`), true
				break
			}
		}
		if !found {
			return netip.Addr{}, false
		}
	}
	if a, err := netip.ParseAddr(entry); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(entry); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	if strings.HasPrefix(entry, "[") && strings.HasSuffix(entry, "]") {
		if a, err := netip.ParseAddr(entry[1 : len(entry)-1]); err == nil && a.Zone() == "" {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
