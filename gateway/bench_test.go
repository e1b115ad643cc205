package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkRequest measures small requests through the gateway over kept
// connections, on loopback hosts in this process (the cost of the gateway
// itself; e2e's BenchmarkGatewayVsForward compares it with a forward).
//
//	go test -run '^$' -bench Request -cpuprofile cpu.out ./gateway
func BenchmarkRequest(b *testing.B) {
	a, p := newNode(b), newNode(b)
	body := strings.Repeat("x", 1024)
	serveWeb(b, p, webProto, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	connect(b, a, p)
	g := startGateway(b, a)
	c := newClient(b)
	url := gwURL(b, g, p.h.ID(), webProto, "/")
	b.ResetTimer()
	for range b.N {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
