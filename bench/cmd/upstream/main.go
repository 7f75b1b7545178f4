// Command upstream is the origin server of Bulwark's benchmark: a plain
// HTTP/1.1 server on loopback that answers every request, whatever its method
// or path, with the same ~1 KiB JSON document (one bank account with its
// balances), so that every target in bench/run.sh proxies exactly the same
// bytes. It uses only the standard library and does no per-request work
// beyond draining the request body, so the numbers measure the proxies.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// Body is the response document. It is compact JSON, as a real API sends it.
var Body = []byte(`{"data":{"account":{"accountId":"acc_7f3e9b2c41d84a6e","status":"Enabled","currency":"GBP","accountCategory":"Personal","accountTypeCode":"CACC","description":"Everyday current account","nickname":"Household bills","openingDate":"2019-06-03","servicer":{"schemeName":"UK.OBIE.BICFI","identification":"NWBKGB2L"},"account":[{"schemeName":"UK.OBIE.SortCodeAccountNumber","identification":"60161331926819","name":"Ms Eleanor J Whitfield"},{"schemeName":"UK.OBIE.IBAN","identification":"GB29NWBK60161331926819","name":"Ms Eleanor J Whitfield"}],"balances":[{"type":"InterimAvailable","creditDebitIndicator":"Credit","amount":{"amount":"2381.64","currency":"GBP"},"dateTime":"2024-11-29T08:15:02+00:00"},{"type":"InterimBooked","creditDebitIndicator":"Credit","amount":{"amount":"2432.18","currency":"GBP"},"dateTime":"2024-11-29T08:15:02+00:00"}],"overdraftLimit":{"amount":"500.00","currency":"GBP"}}},"links":{"self":"https://api.examplebank.co.uk/open-banking/v4.0/aisp/accounts/acc_7f3e9b2c41d84a6e"},"meta":{"totalPages":1}}`)

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "loopback address to listen on")
	printSize := flag.Bool("print-size", false, "print the body size in bytes and exit")
	flag.Parse()
	if *printSize {
		fmt.Println(len(Body))
		return
	}
	if err := requireLoopback(*addr); err != nil {
		log.Fatal(err)
	}

	contentType := []string{"application/json"}
	contentLength := []string{strconv.Itoa(len(Body))}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		hdr := w.Header()
		hdr["Content-Type"] = contentType
		hdr["Content-Length"] = contentLength
		_, _ = w.Write(Body)
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          log.New(os.Stderr, "upstream: ", log.LstdFlags),
	}
	log.Printf("upstream: listening on http://%s (%d-byte JSON body)", ln.Addr(), len(Body))
	log.Fatal(srv.Serve(ln))
}

// requireLoopback refuses to listen anywhere but on a loopback address: the
// benchmark's servers are never exposed.
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
