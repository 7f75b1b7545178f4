package gateway

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// connGuard caps the connections one client address may hold open. The
// cap is read on every accept, so a reload changes it for new connections.
type connGuard struct {
	mu       sync.Mutex
	perIP    map[netip.Addr]int
	limit    func() int
	onReject func()
	open     atomic.Int64
}

func newConnGuard(limit func() int, onReject func()) *connGuard {
	return &connGuard{perIP: map[netip.Addr]int{}, limit: limit, onReject: onReject}
}

func (g *connGuard) acquire(ip netip.Addr) bool {
	lim := g.limit()
	g.mu.Lock()
	defer g.mu.Unlock()
	if lim > 0 && g.perIP[ip] >= lim {
		return false
	}
	g.perIP[ip]++
	g.open.Add(1)
	return true
}

func (g *connGuard) release(ip netip.Addr) {
	g.mu.Lock()
	if n := g.perIP[ip]; n <= 1 {
		delete(g.perIP, ip)
	} else {
		g.perIP[ip] = n - 1
	}
	g.mu.Unlock()
	g.open.Add(-1)
}

// guardListener applies the per-IP cap before a connection costs a TLS
// handshake: a connection over the cap is closed at once.
type guardListener struct {
	net.Listener
	guard *connGuard
}

func (l *guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := addrIP(c.RemoteAddr())
		if !l.guard.acquire(ip) {
			_ = c.Close()
			if l.guard.onReject != nil {
				l.guard.onReject()
			}
			continue
		}
		return &guardConn{Conn: c, ip: ip, guard: l.guard}, nil
	}
}

type guardConn struct {
	net.Conn
	ip    netip.Addr
	guard *connGuard
	once  sync.Once
}

func (c *guardConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.guard.release(c.ip) })
	return err
}

func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
