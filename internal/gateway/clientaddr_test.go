package gateway

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/config"
)

func trustedClients(t testing.TB, forwarded bool, cidrs ...string) *clientAddrs {
	t.Helper()
	c := &clientAddrs{forwarded: forwarded}
	for _, s := range cidrs {
		p, err := config.ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		c.trusted = append(c.trusted, p)
	}
	return c
}

func TestClientAddrResolve(t *testing.T) {
	tests := []struct {
		name      string
		trusted   []string
		forwarded bool
		peer      string
		headers   []string // values of the forwarding header, in order
		want      string
		via       bool
	}{
		{name: "no trusted proxies: header ignored", peer: "203.0.113.7", headers: []string{"198.51.100.1"}, want: "203.0.113.7"},
		{name: "untrusted peer: spoofed header ignored", trusted: []string{"10.0.0.0/8"}, peer: "203.0.113.7", headers: []string{"198.51.100.1"}, want: "203.0.113.7"},
		{name: "trusted peer, one hop", trusted: []string{"10.0.0.0/8"}, peer: "10.1.2.3", headers: []string{"198.51.100.1"}, want: "198.51.100.1", via: true},
		{name: "trusted peer, client prepends a lie", trusted: []string{"10.0.0.0/8"}, peer: "10.1.2.3", headers: []string{"1.2.3.4, 198.51.100.1"}, want: "198.51.100.1", via: true},
		{name: "chain of trusted proxies", trusted: []string{"10.0.0.0/8"}, peer: "10.1.2.3", headers: []string{"198.51.100.1, 10.9.9.9, 10.8.8.8"}, want: "198.51.100.1", via: true},
		{name: "repeated header lines are one list", trusted: []string{"10.0.0.0/8"}, peer: "10.1.2.3", headers: []string{"6.6.6.6, 198.51.100.1", "10.9.9.9"}, want: "198.51.100.1", via: true},
		{name: "all trusted: leftmost", trusted: []string{"10.0.0.0/8"}, peer: "10.1.2.3", headers: []string{"10.5.5.5, 10.6.6.6"}, want: "10.5.5.5", via: true},
		{name: "garbage entry stops the walk", trusted: []string{"10.0.0.0/8"}, peer: "10.1.2.3", headers: []string{"198.51.100.1, not-an-ip"}, want: "10.1.2.3"},
		{name: "garbage after a trusted hop", trusted: []string{"10.0.0.0/8"}, peer: "10.1.2.3", headers: []string{"junk, 10.4.4.4"}, want: "10.4.4.4", via: true},
		{name: "no header from a trusted peer", trusted: []string{"10.0.0.0/8"}, peer: "10.1.2.3", want: "10.1.2.3"},
		{name: "port on an entry", trusted: []string{"10.0.0.0/8"}, peer: "10.1.2.3", headers: []string{"198.51.100.1:5555"}, want: "198.51.100.1", via: true},
		{name: "ipv6 entry", trusted: []string{"10.0.0.0/8"}, peer: "10.1.2.3", headers: []string{"2001:db8::1"}, want: "2001:db8::1", via: true},
		{name: "mapped peer matches ipv4 cidr", trusted: []string{"10.0.0.0/8"}, peer: "::ffff:10.1.2.3", headers: []string{"198.51.100.1"}, want: "198.51.100.1", via: true},
		{name: "single trusted address", trusted: []string{"127.0.0.1"}, peer: "127.0.0.1", headers: []string{"198.51.100.1"}, want: "198.51.100.1", via: true},
		{name: "forwarded header", trusted: []string{"10.0.0.0/8"}, forwarded: true, peer: "10.1.2.3", headers: []string{`for=1.2.3.4, for="[2001:db8::7]:4711";proto=https`}, want: "2001:db8::7", via: true},
		{name: "forwarded obfuscated identifier stops", trusted: []string{"10.0.0.0/8"}, forwarded: true, peer: "10.1.2.3", headers: []string{"for=_hidden"}, want: "10.1.2.3"},
		{name: "forwarded without for", trusted: []string{"10.0.0.0/8"}, forwarded: true, peer: "10.1.2.3", headers: []string{"proto=https"}, want: "10.1.2.3"},
		{name: "zone rejected", trusted: []string{"10.0.0.0/8"}, peer: "10.1.2.3", headers: []string{"fe80::1%eth0"}, want: "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := trustedClients(t, tt.forwarded, tt.trusted...)
			h := http.Header{}
			name := "X-Forwarded-For"
			if tt.forwarded {
				name = "Forwarded"
			}
			for _, v := range tt.headers {
				h.Add(name, v)
			}
			got, via := c.resolve(netip.MustParseAddr(tt.peer), h)
			if got.String() != tt.want || via != tt.via {
				t.Fatalf("resolve = %s, %v; want %s, %v", got, via, tt.want, tt.via)
			}
		})
	}
}

func TestClientAddrHopLimit(t *testing.T) {
	c := trustedClients(t, false, "10.0.0.0/8")
	v := "198.51.100.1"
	for range 100 {
		v += ", 10.0.0.1"
	}
	got, _ := c.resolve(netip.MustParseAddr("10.1.1.1"), http.Header{"X-Forwarded-For": {v}})
	if got.String() != "10.0.0.1" {
		t.Fatalf("a chain longer than %d hops resolved to %s, want the last trusted hop examined", maxForwardedHops, got)
	}
}

// FuzzClientAddr: no header can make the resolver panic, return an
// invalid address, or name a client when the peer is not trusted.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"198.51.100.1", "1.2.3.4, 10.0.0.1", "for=1.2.3.4;proto=https", `for="[::1]:80"`, ",,,", "[", "for="} {
		f.Add(s, true, false)
		f.Add(s, false, true)
	}
	trusted := trustedClients(f, false, "10.0.0.0/8", "2001:db8::/32")
	f.Fuzz(func(t *testing.T, header string, trustedPeer, forwarded bool) {
		c := *trusted
		c.forwarded = forwarded
		peer := netip.MustParseAddr("203.0.113.9")
		if trustedPeer {
			peer = netip.MustParseAddr("10.0.0.9")
		}
		h := http.Header{"X-Forwarded-For": {header}, "Forwarded": {header}}
		got, via := c.resolve(peer, h)
		if !got.IsValid() {
			t.Fatalf("invalid address for %q", header)
		}
		if !trustedPeer && (got != peer || via) {
			t.Fatalf("untrusted peer: header %q changed the client to %s", header, got)
		}
	})
}
