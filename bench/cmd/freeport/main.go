// Command freeport prints n distinct TCP ports that are free on 127.0.0.1,
// separated by spaces, for bench/run.sh. Ports are picked below the kernel's
// ephemeral range (read from /proc when available), so that outgoing
// connections made during the benchmark cannot take one of them between this
// check and the server binding it. All candidate listeners are held until
// every port is chosen, so the ports are distinct.
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

func main() {
	n := flag.Int("n", 1, "how many ports")
	flag.Parse()
	lo, hi := 20000, 32000
	if start := ephemeralStart(); start > 0 && start <= lo+1000 {
		lo, hi = 1024, 0 // unusual range: let the kernel choose
	} else if start > 0 && start < hi {
		hi = start
	}
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	var ports []string
	for tries := 0; len(ports) < *n && tries < 10000; tries++ {
		addr := "127.0.0.1:0"
		if hi > lo {
			addr = "127.0.0.1:" + strconv.Itoa(lo+rand.IntN(hi-lo))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		held = append(held, l)
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	if len(ports) < *n {
		log.Fatalf("freeport: found only %d of %d free ports", len(ports), *n)
	}
	fmt.Println(strings.Join(ports, " "))
}

// ephemeralStart is the first port of the kernel's ephemeral range, or 0.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.Atoi(f[0])
	return v
}
