package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/p2pd/p2pd/api"
)

// BenchmarkGatewayVsForward measures small HTTP requests to a peer's web
// service through the gateway and through a plain forward of the same
// protocol, on the same two daemons in the same run, alternating the two
// paths round by round: the latency of one request at a time over a kept
// connection, the request rate of 16 concurrent kept connections, and the
// rate of requests that each open a new connection (and so a new stream).
//
//	go test -run '^$' -bench GatewayVsForward -benchtime 1x ./e2e/
func BenchmarkGatewayVsForward(b *testing.B) {
	const (
		rounds     = 4
		sequential = 500 // requests per round, one at a time
		clients    = 16
		perClient  = 100 // requests per client per round
		fresh      = 200 // requests on new connections per round
	)
	a := startDaemon(b, "--bootstrap", "none", "--dht", "off", "--gateway", "/ip4/127.0.0.1/tcp/0")
	p := startDaemon(b, "--bootstrap", "none", "--dht", "off")
	body := strings.Repeat("x", 1024)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	b.Cleanup(srv.Close)
	if r := p.cli("listen", "/x/web", srv.Listener.Addr().String()); r.code != 0 {
		b.Fatalf("listen: %s", r)
	}
	if r := a.cli("connect", p.addr()); r.code != 0 {
		b.Fatalf("connect: %s", r)
	}
	var f api.Listener
	a.mustJSON(&f, "forward", "/x/web", "/ip4/127.0.0.1/tcp/0", p.addr())
	paths := map[string]string{
		"gateway": "http://" + hostPort(b, a.gw) + "/p2p/" + p.id + "/x/web/http/",
		"forward": "http://" + hostPort(b, f.ListenAddress) + "/",
	}
	get := func(c *http.Client, url string) error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || n != int64(len(body)) {
			return fmt.Errorf("GET %s: status %d, %d bytes, %v", url, resp.StatusCode, n, err)
		}
		return nil
	}
	lat := map[string][]time.Duration{}
	rate := map[string]time.Duration{}
	freshRate := map[string]time.Duration{}
	for i := 0; i < b.N*rounds; i++ {
		order := []string{"gateway", "forward"}
		if i%2 == 1 {
			order = []string{"forward", "gateway"}
		}
		for _, name := range order {
			url := paths[name]
			c := httpClient(b, clients)
			for range sequential {
				start := time.Now()
				if err := get(c, url); err != nil {
					b.Fatal(err)
				}
				lat[name] = append(lat[name], time.Since(start))
			}
			start := time.Now()
			var g errgroup.Group
			for range clients {
				g.Go(func() error {
					for range perClient {
						if err := get(c, url); err != nil {
							return err
						}
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			rate[name] += time.Since(start)
			c.Transport.(*http.Transport).CloseIdleConnections()

			nc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			start = time.Now()
			for range fresh {
				if err := get(nc, url); err != nil {
					b.Fatal(err)
				}
			}
			freshRate[name] += time.Since(start)
		}
	}
	q := func(ds []time.Duration, f float64) float64 {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return float64(s[int(f*float64(len(s)-1))]) / float64(time.Microsecond)
	}
	perSec := func(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
	n := b.N * rounds
	for _, name := range []string{"gateway", "forward"} {
		b.ReportMetric(q(lat[name], 0.5), name+"-p50-us")
		b.ReportMetric(q(lat[name], 0.99), name+"-p99-us")
		b.ReportMetric(perSec(n*clients*perClient, rate[name]), name+"-req/s")
		b.ReportMetric(perSec(n*fresh, freshRate[name]), name+"-newconn-req/s")
	}
	b.ReportMetric(q(lat["gateway"], 0.5)/q(lat["forward"], 0.5), "p50-ratio")
	b.ReportMetric(float64(rate["forward"])/float64(rate["gateway"]), "rate-ratio")
	b.ReportMetric(float64(freshRate["forward"])/float64(freshRate["gateway"]), "newconn-rate-ratio")
}
