// Command bareproxy is the benchmark's baseline: the reverse proxy a Go
// developer writes in five lines, httputil.NewSingleHostReverseProxy served
// with http.ListenAndServeTLS.
//
// By default it keeps Go's default transport (http.DefaultTransport), whose
// MaxIdleConnsPerHost is 2: under concurrent load most upstream connections
// are closed after one request and dialled again. That is the baseline the
// project's performance goal names. With -tuned it uses a transport whose
// keep-alive pool is sized for load (512 idle connections per host, as
// Bulwark's default), so the report can show how much of any advantage comes
// from pool sizing alone rather than from Bulwark itself.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18443", "loopback address to listen on (TLS)")
	upstream := flag.String("upstream", "http://127.0.0.1:18081", "upstream base URL")
	cert := flag.String("cert", "bench/out/cert.pem", "PEM certificate")
	key := flag.String("key", "bench/out/key.pem", "PEM private key")
	tuned := flag.Bool("tuned", false, "use a transport with a keep-alive pool sized for load instead of Go's default transport")
	flag.Parse()
	if err := requireLoopback(*addr); err != nil {
		log.Fatal(err)
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Scheme == "" || u.Host == "" {
		log.Fatalf("bareproxy: bad -upstream %q", *upstream)
	}

	p := httputil.NewSingleHostReverseProxy(u)
	p.ErrorLog = log.New(os.Stderr, "bareproxy: ", log.LstdFlags)
	kind := "default transport"
	if *tuned {
		kind = "tuned transport"
		p.Transport = &http.Transport{
			Proxy: nil, // never consult HTTP(S)_PROXY for a loopback upstream
			DialContext: (&net.Dialer{
				Timeout:   5 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   512,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			ExpectContinueTimeout: 1 * time.Second,
		}
	}
	log.Printf("bareproxy: https://%s -> %s (%s)", *addr, u, kind)
	log.Fatal(http.ListenAndServeTLS(*addr, *cert, *key, p))
}

// requireLoopback refuses to listen anywhere but on a loopback address.
func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to listen on %q: loopback IP addresses only", addr)
	}
	return nil
}
