package metrics

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/httpserve"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/metrics/promtest"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe/safetest"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// scrape fetches and parses the exposition at url.
func scrape(t *testing.T, url string) map[string]*promtest.Family {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("failed to scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("failed to read the scrape: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("scrape: status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	fams, err := promtest.Parse(string(body))
	if err != nil {
		t.Fatalf("scrape is not valid exposition format: %v\n%s", err, body)
	}
	return fams
}

func TestMetricsServer(t *testing.T) {
	fs, err := proc.NewFS("")
	if err != nil {
		t.Fatalf("failed to open /proc: %v", err)
	}
	m := New(fs)
	for range 3 {
		m.ObserveReset("refused", "local", 7211)
	}
	m.ObserveReset("abort", "in", 443)
	hostile := "a\"b\\c\nd\xffe"                  // quote, backslash, newline, invalid UTF-8
	m.ObserveReset("ev\u202eil\u0085", "out", 80) // bidi override, C1
	m.ObserveReset(hostile, "out", 80)
	m.SetCaptureDrops(func() uint64 { return 7 })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := httpserve.Serve(ctx, ln, m.Handler(), nil)
	defer stop()
	url := "http://" + ln.Addr().String() + "/metrics"

	fams := scrape(t, url)
	resets := fams["rstwatch_resets_total"]
	if resets == nil || resets.Type != "counter" || !strings.Contains(resets.Help, "port=\"other\"") {
		t.Fatalf("rstwatch_resets_total family: %+v", resets)
	}
	want := map[string]float64{
		`rstwatch_resets_total{cause="refused",direction="local",port="7211",}`:           3,
		`rstwatch_resets_total{cause="abort",direction="in",port="443",}`:                 1,
		`rstwatch_resets_total{cause="a\"b\\c\nd\\xffe",direction="out",port="80",}`:      1,
		`rstwatch_resets_total{cause="ev\\u202eil\\xc2\\x85",direction="out",port="80",}`: 1,
	}
	if !maps.Equal(resets.Samples, want) {
		t.Errorf("resets series:\n%v\nwant:\n%v", resets.Samples, want)
	}
	if d := fams["rstwatch_capture_drops_total"]; d == nil || d.Type != "counter" || d.Samples["rstwatch_capture_drops_total{}"] != 7 {
		t.Errorf("rstwatch_capture_drops_total: %+v", d)
	}
	kernel, err := counters.Read(fs)
	if err != nil {
		t.Fatalf("failed to read counters: %v", err)
	}
	for _, ci := range counters.Catalogue() {
		f := fams[ci.Metric]
		if _, ok := kernel[ci.Key]; !ok {
			if f != nil {
				t.Errorf("%s served though the kernel lacks %s", ci.Metric, ci.Key)
			}
			continue
		}
		if f == nil || f.Type != "counter" || len(f.Samples) != 1 || !strings.Contains(f.Help, ci.Key) {
			t.Errorf("%s: %+v", ci.Metric, f)
		}
	}
	for name := range fams {
		if !strings.HasPrefix(name, "rstwatch_") || !strings.HasSuffix(name, "_total") {
			t.Errorf("unexpected family %s", name)
		}
	}

	// Kernel counters are read at scrape time: make this namespace's
	// AttemptFails move with a refused connect, then scrape again.
	before := fams["rstwatch_tcp_attempt_fails_total"].Samples["rstwatch_tcp_attempt_fails_total{}"]
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen: %v", err)
	}
	closed := probe.Addr().String()
	probe.Close()
	if c, err := net.Dial("tcp", closed); err == nil {
		c.Close()
		t.Fatalf("connect to closed port %s succeeded", closed)
	}
	after := scrape(t, url)["rstwatch_tcp_attempt_fails_total"].Samples["rstwatch_tcp_attempt_fails_total{}"]
	if after <= before {
		t.Errorf("rstwatch_tcp_attempt_fails_total %v after a refused connect, was %v", after, before)
	}

	resp, err := http.Post(url, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatalf("failed to POST: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST status %d, want 405", resp.StatusCode)
	}

	cancel() // ctx ending stops the server
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("server still accepting after its context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop() // and stop after that is harmless
}

func TestMetricsNoDropsHook(t *testing.T) {
	m := New(proc.FS{}) // no /proc: the kernel counters are left out
	body := string(m.AppendExposition(nil))
	fams, err := promtest.Parse(body)
	if err != nil {
		t.Fatalf("invalid exposition: %v\n%s", err, body)
	}
	if _, ok := fams["rstwatch_capture_drops_total"]; ok {
		t.Errorf("capture drops served without a hook:\n%s", body)
	}
	if !strings.Contains(body, "# rstwatch: kernel counters unavailable: ") {
		t.Errorf("no note about the missing counters:\n%s", body)
	}
}

// resetSeries returns the registry's rstwatch_resets_total series by key.
func resetSeries(t *testing.T, m *Registry) map[string]float64 {
	t.Helper()
	fams, err := promtest.Parse(string(m.AppendExposition(nil)))
	if err != nil {
		t.Fatalf("invalid exposition: %v", err)
	}
	return fams["rstwatch_resets_total"].Samples
}

func TestMetricsTopPorts(t *testing.T) {
	m := New(proc.FS{})
	// A scan: one reset on each of 1000 ports fills the 20 slots with the
	// first ports seen; the rest count as "other".
	for p := range 1000 {
		m.ObserveReset("refused", "in", uint16(1000+p))
	}
	s1 := resetSeries(t, m)
	if len(s1) != TopPorts+1 || s1[`rstwatch_resets_total{cause="refused",direction="in",port="other",}`] != 1000-TopPorts {
		t.Fatalf("after the scan: %d series, other = %v", len(s1), s1[`rstwatch_resets_total{cause="refused",direction="in",port="other",}`])
	}
	// A busy port takes over a slot once it has clearly more resets than
	// the least busy labelled port.
	for range 5 {
		m.ObserveReset("refused", "in", 7211)
	}
	s2 := resetSeries(t, m)
	busy := `rstwatch_resets_total{cause="refused",direction="in",port="7211",}`
	if s2[busy] == 0 || len(s2) != TopPorts+1 {
		t.Fatalf("busy port 7211 not labelled: %v", s2)
	}
	// Every series still served never went down.
	for k, v := range s2 {
		if old, ok := s1[k]; ok && v < old {
			t.Errorf("series %s went down from %v to %v", k, old, v)
		}
	}
	// Two ports that take turns do not swap slots on every reset.
	m2 := New(proc.FS{})
	for p := range TopPorts {
		for range 100 {
			m2.ObserveReset("c", "d", uint16(p+1))
		}
	}
	labelled := func() string {
		var ports []string
		for k := range resetSeries(t, m2) {
			ports = append(ports, k)
		}
		slices.Sort(ports)
		return strings.Join(ports, " ")
	}
	for range 112 { // 112 = 100 + 100/8: not enough
		m2.ObserveReset("c", "d", 9999)
	}
	before := labelled()
	m2.ObserveReset("c", "d", 9999) // 113: takes the slot of port 1
	if after := labelled(); after == before || !strings.Contains(after, `port="9999"`) || strings.Contains(after, `port="1",`) {
		t.Fatalf("port 9999 did not replace port 1:\n%s", after)
	}
	swaps, last := 0, labelled()
	for i := range 1000 {
		m2.ObserveReset("c", "d", uint16(1+i%2*9998)) // ports 1 and 9999 in turn
		if cur := labelled(); cur != last {
			swaps, last = swaps+1, cur
		}
	}
	if swaps > 20 {
		t.Errorf("ports 1 and 9999 swapped slots %d times in 1000 resets", swaps)
	}
	if n := len(resetSeries(t, m2)); n > TopPorts+1 {
		t.Errorf("%d series, want at most %d", n, TopPorts+1)
	}
}

func TestMetricsMaxPairs(t *testing.T) {
	m := New(proc.FS{})
	for i := range 3 * MaxPairs {
		m.ObserveReset(fmt.Sprintf("cause%d", i), "in", 80)
	}
	s := resetSeries(t, m)
	if len(s) != MaxPairs {
		t.Errorf("%d series for %d causes, want %d", len(s), 3*MaxPairs, MaxPairs)
	}
	if got := s[`rstwatch_resets_total{cause="other",direction="other",port="80",}`]; got != 2*MaxPairs+1 {
		t.Errorf("overflow series = %v, want %d", got, 2*MaxPairs+1)
	}
}

func TestObserveResetAllocs(t *testing.T) {
	m := New(proc.FS{})
	causes := []string{"refused", "abort", "stale"}
	dirs := []string{"in", "out", "local"}
	for _, c := range causes {
		for _, d := range dirs {
			m.ObserveReset(c, d, 1)
		}
	}
	var i int
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		// Labelled ports, "other" ports and promotions.
		m.ObserveReset(causes[i%3], dirs[i/3%3], uint16(i*7919))
	})
	if allocs != 0 {
		t.Errorf("ObserveReset allocates %v times per call, want 0", allocs)
	}
	// Observe, as the capture loop calls it, neither.
	e := &sniff.Event{Direction: sniff.In, Segment: sniff.Segment{Src: netip.MustParseAddrPort("127.0.0.1:7211")}}
	v := &explain.Verdict{Cause: explain.Refused}
	if n := testing.AllocsPerRun(1000, func() { m.Observe(e, v) }); n != 0 {
		t.Errorf("Observe allocates %v times per call, want 0", n)
	}
	if got := resetSeries(t, m)[`rstwatch_resets_total{cause="refused",direction="in",port="7211",}`]; got < 1000 {
		t.Errorf("Observe counted %v resets on port 7211, want at least 1000", got)
	}
}

func TestMetricsConcurrent(t *testing.T) {
	m := New(proc.FS{})
	var drops atomic.Uint64
	m.SetCaptureDrops(drops.Load)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				m.ObserveReset("refused", "in", uint16(g*1000+i%50))
				drops.Add(1)
			}
		})
	}
	for range 20 {
		if _, err := promtest.Parse(string(m.AppendExposition(nil))); err != nil {
			t.Fatalf("invalid exposition while observing: %v", err)
		}
	}
	wg.Wait()
	var total float64
	for _, v := range resetSeries(t, m) {
		total += v
	}
	// An evicted port's series vanish, so the series add up to at most the
	// observations, and to some of them.
	if total > 8000 || total == 0 {
		t.Errorf("series add up to %v, more than the 8000 observations", total)
	}
}

// TestHostileLabels counts resets under each hostile label value: the
// exposition stays valid, terminal-safe, and keeps them apart.
func TestHostileLabels(t *testing.T) {
	m := New(proc.FS{})
	for i, s := range safetest.Hostile {
		m.ObserveReset(s, s, uint16(100+i))
	}
	body := m.AppendExposition(nil)
	safetest.AssertTerminalSafe(t, body)
	fams, err := promtest.Parse(string(body))
	if err != nil {
		t.Fatalf("invalid exposition: %v\n%s", err, body)
	}
	if n := len(fams["rstwatch_resets_total"].Samples); n != len(safetest.Hostile) {
		t.Errorf("%d series for %d label values:\n%s", n, len(safetest.Hostile), body)
	}
}

// resetEvent is a reset from src to dst, as the capture would report it.
func resetEvent(src, dst string) *sniff.Event {
	return &sniff.Event{Direction: sniff.Local, Segment: sniff.Segment{
		Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst), Flags: sniff.FlagRST}}
}

// TestServicePort checks the port label's rule: the end that listened.
func TestServicePort(t *testing.T) {
	for _, tt := range []struct {
		name     string
		src, dst string
		v        explain.Verdict
		want     uint16
	}{
		{"refused", "127.0.0.1:7211", "127.0.0.1:45700", explain.Verdict{Cause: explain.Refused}, 7211},
		{"rejected_high_port", "10.0.0.1:60000", "10.0.0.2:1234", explain.Verdict{Cause: explain.Rejected}, 60000},
		{"overflow", "10.0.0.1:8080", "10.0.0.2:40000", explain.Verdict{Cause: explain.Overflow}, 8080},
		{"abort_by_server", "10.0.0.1:9000", "10.0.0.2:80",
			explain.Verdict{Cause: explain.Abort, Sender: explain.Sender{Local: explain.True, Listening: explain.True}}, 9000},
		{"abort_by_client", "10.0.0.2:45000", "10.0.0.1:7300",
			explain.Verdict{Cause: explain.Abort, Sender: explain.Sender{Local: explain.True, Listening: explain.False}}, 7300},
		{"stale_from_client", "10.0.0.2:50000", "10.0.0.1:8080",
			explain.Verdict{Cause: explain.Stale, Sender: explain.Sender{Local: explain.False}}, 8080},
		{"abort_offline", "[2001:db8::1]:443", "[2001:db8::2]:51000", explain.Verdict{Cause: explain.Abort, Offline: true}, 443},
		{"unknown_remote", "192.0.2.1:33000", "192.0.2.2:22", explain.Verdict{Cause: explain.Unknown}, 22},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ServicePort(resetEvent(tt.src, tt.dst), &tt.v); got != tt.want {
				t.Errorf("ServicePort(%s -> %s, %+v) = %d, want %d", tt.src, tt.dst, tt.v, got, tt.want)
			}
		})
	}
}

// TestObserveServicePort checks that resets sent by clients from ephemeral
// ports make one series, their service's, not one per client port.
func TestObserveServicePort(t *testing.T) {
	m := New(proc.FS{})
	v := explain.Verdict{Cause: explain.Abort, Sender: explain.Sender{Local: explain.True, Listening: explain.False}}
	for i := range 100 {
		m.Observe(resetEvent(fmt.Sprintf("127.0.0.1:%d", 40000+i), "127.0.0.1:7300"), &v)
	}
	refused := explain.Verdict{Cause: explain.Refused}
	m.Observe(resetEvent("127.0.0.1:7211", "127.0.0.1:45700"), &refused)
	want := map[string]float64{
		`rstwatch_resets_total{cause="abort",direction="local",port="7300",}`:   100,
		`rstwatch_resets_total{cause="refused",direction="local",port="7211",}`: 1,
	}
	if got := resetSeries(t, m); !maps.Equal(got, want) {
		t.Errorf("series:\n%v\nwant:\n%v", got, want)
	}
	fams, err := promtest.Parse(string(m.AppendExposition(nil)))
	if err != nil {
		t.Fatalf("invalid exposition: %v", err)
	}
	if help := fams["rstwatch_resets_total"].Help; !strings.Contains(help, "port is the service port") {
		t.Errorf("HELP does not state the port rule: %q", help)
	}
}
