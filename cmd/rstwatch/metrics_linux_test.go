package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/metrics/promtest"
	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// scrapeIn fetches /metrics from addr inside ns over a connection dialed
// there (http.Client would dial from another thread, in another namespace).
func scrapeIn(t *testing.T, ns *netnstest.NS, addr string) map[string]*promtest.Family {
	t.Helper()
	var c net.Conn
	ns.Do(t, func() (err error) { c, err = net.DialTimeout("tcp", addr, 2*time.Second); return err })
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		t.Fatalf("failed to send the scrape: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("failed to read the scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d, %v", resp.StatusCode, err)
	}
	fams, err := promtest.Parse(string(body))
	if err != nil {
		t.Fatalf("scrape is not valid exposition format: %v\n%s", err, body)
	}
	return fams
}

// TestIntegrationWatchMetrics scrapes a running watch: its reset counter
// labelled by cause, direction and port, the kernel counters of its
// namespace, and its capture drops.
func TestIntegrationWatchMetrics(t *testing.T) {
	ns := netnstest.New(t)
	const addr = "127.0.0.1:9813"
	w := startWatch(t, ns, "--metrics", addr, "--json")
	for i := range 3 {
		snifftest.Refuse(t, ns, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(45700+i)), netip.MustParseAddrPort("127.0.0.1:7211"))
	}
	time.Sleep(200 * time.Millisecond)
	fams := scrapeIn(t, ns, addr)
	resets := fams["rstwatch_resets_total"]
	if resets == nil || resets.Type != "counter" {
		t.Fatalf("no rstwatch_resets_total counter: %v", fams)
	}
	var got float64
	for key, v := range resets.Samples {
		l := resets.Labels[key]
		if l["cause"] == "refused" && l["direction"] == "local" && l["port"] == "7211" {
			got = v
		}
	}
	if got != 3 {
		t.Errorf("rstwatch_resets_total{cause=refused,direction=local,port=7211} = %v, want 3 (%v)", got, resets.Samples)
	}
	// The namespace's own counters: three refused connects, three resets sent.
	for _, name := range []string{"rstwatch_tcp_attempt_fails_total", "rstwatch_tcp_out_rsts_total"} {
		f := fams[name]
		if f == nil {
			t.Fatalf("no %s", name)
		}
		for _, v := range f.Samples {
			if v != 3 {
				t.Errorf("%s = %v, want 3 (this namespace's counter)", name, v)
			}
		}
	}
	if f := fams["rstwatch_capture_drops_total"]; f == nil {
		t.Errorf("no rstwatch_capture_drops_total")
	}
	w.cmd.Process.Signal(syscall.SIGINT)
	if _, stderr, code := w.wait(t, 5*time.Second); code != 0 || !strings.Contains(stderr, "3 resets captured") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}
