package explain_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

func openIn(t *testing.T, ns *netnstest.NS, opts ...func(*explain.Config)) *explain.Explainer {
	t.Helper()
	cfg := &explain.Config{
		NetNS: ns.Path,
		// The counters of the test namespace, read through the thread
		// that enters it.
		Counters: func() (c proc.Counters, err error) {
			err = netnsDo(ns, func() error {
				fs, err := proc.NewFS("/proc/thread-self")
				if err != nil {
					return err
				}
				c, err = fs.Counters()
				return err
			})
			return c, err
		},
	}
	for _, o := range opts {
		o(cfg)
	}
	x, err := explain.Open(cfg)
	if errors.Is(err, os.ErrPermission) {
		t.Skipf("skipping, permission denied (need CAP_SYS_ADMIN to enter the namespace): %v", err)
	}
	if err != nil {
		t.Fatalf("failed to open explainer: %v", err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// TestIntegrationExplainState checks the verdicts against sockets this test
// holds, with the table refreshed by hand.
func TestIntegrationExplainState(t *testing.T) {
	ns := netnstest.New(t)
	var ln net.Listener
	ns.Do(t, func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:7400"); return err })
	x := openIn(t, ns)

	refused := func(port uint16) *sniff.Event {
		return &sniff.Event{Segment: sniff.Segment{Family: sniff.IPv4,
			Src:   netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
			Dst:   netip.MustParseAddrPort("127.0.0.1:40000"),
			Flags: sniff.FlagRST | sniff.FlagACK, Ack: 1}}
	}
	var v explain.Verdict
	x.Explain(refused(7400), &v)
	if v.Cause != explain.Rejected || v.Sender.Listening != explain.True || !v.Listener.Owned || v.Listener.PID != os.Getpid() {
		t.Fatalf("reset from a live listener's port: %+v, want rejected by a listener owned by pid %d", v, os.Getpid())
	}
	x.Explain(refused(7401), &v)
	if v.Cause != explain.Refused || v.Sender.Listening != explain.False || v.Sender.LastListener.Known {
		t.Fatalf("reset from a port never listened on: %+v", v)
	}

	ln.Close()
	x.Refresh(time.Now())
	x.Explain(refused(7400), &v)
	if v.Cause != explain.Refused || v.Sender.Listening != explain.False {
		t.Fatalf("after the listener closed: %+v, want refused and not listening", v)
	}
	if l := v.Sender.LastListener; !l.Known || l.PID != os.Getpid() || l.Until.IsZero() {
		t.Fatalf("last listener %+v, want pid %d with a time", l, os.Getpid())
	}

	// Remote senders are judged from the wire alone.
	remote := refused(80)
	remote.Src = netip.MustParseAddrPort("198.18.9.9:80")
	x.Explain(remote, &v)
	if v.Cause != explain.Refused || v.Sender.Local != explain.False || v.Sender.Listening != explain.Null || v.Target.Local != explain.True {
		t.Fatalf("remote refusal: %+v", v)
	}
}

// TestIntegrationExplainAllocs measures what attribution costs per reset on
// the capture path: a live sock_diag lookup and table reads, no allocation
// beyond what the output needs.
func TestIntegrationExplainAllocs(t *testing.T) {
	ns := netnstest.New(t)
	x := openIn(t, ns)
	e := refusedReset(7211)
	var v explain.Verdict
	allocs := testing.AllocsPerRun(200, func() { x.Explain(e, &v) })
	t.Logf("Explain of a refused reset: %.1f allocations", allocs)
	if allocs > 0 {
		t.Fatalf("Explain allocates %.1f times per reset, want 0", allocs)
	}
}

// refusedReset is the reset of a SYN to 127.0.0.1:port from
// 127.0.0.1:40000, as the kernel sends it.
func refusedReset(port uint16) *sniff.Event {
	return &sniff.Event{Segment: sniff.Segment{Family: sniff.IPv4,
		Src: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Dst: netip.MustParseAddrPort("127.0.0.1:40000"),
		Flags: sniff.FlagRST | sniff.FlagACK, Ack: 1}}
}

func BenchmarkExplainRefused(b *testing.B) {
	ns := netnstest.New(b)
	x := openIn(&testing.T{}, ns)
	e := refusedReset(7211)
	var v explain.Verdict
	b.ReportAllocs()
	for b.Loop() {
		x.Explain(e, &v)
	}
}

// TestIntegrationExplainListenerBoundSinceSnapshot checks that "is anyone
// listening" is asked of the kernel at the moment of the reset, not read
// from the snapshot alone: a listener bound after the last refresh makes a
// SYN's reset "rejected" (a firewall in front of a live listener), and one
// closed after it makes it "refused", both marked as checked.
func TestIntegrationExplainListenerBoundSinceSnapshot(t *testing.T) {
	ns := netnstest.New(t)
	x := openIn(t, ns) // the snapshot: nothing listens on 7410
	var ln net.Listener
	ns.Do(t, func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:7410"); return err })
	e := refusedReset(7410)
	var v explain.Verdict
	x.Explain(e, &v)
	if v.Cause != explain.Rejected || v.Sender.Listening != explain.True || !v.Sender.ListenChecked {
		t.Fatalf("reset from a port bound after the snapshot: %+v, want rejected, listening, checked", v)
	}
	x.Refresh(time.Now()) // now the snapshot has the listener
	ln.Close()
	time.Sleep(2 * 20 * time.Millisecond) // past listenCheckFor
	x.Explain(e, &v)
	if v.Cause != explain.Refused || v.Sender.Listening != explain.False || !v.Sender.ListenChecked {
		t.Fatalf("reset from a port closed after the snapshot: %+v, want refused, not listening, checked", v)
	}
}

// BenchmarkExplainRefusedManyPorts is BenchmarkExplainRefused with a new
// sender port each time, so that every reset asks the kernel for its
// listeners (no 20 ms cache hit): the cost of the live listener check.
func BenchmarkExplainRefusedManyPorts(b *testing.B) {
	ns := netnstest.New(b)
	x := openIn(&testing.T{}, ns)
	e := refusedReset(7211)
	var v explain.Verdict
	b.ReportAllocs()
	port := uint16(10000)
	for b.Loop() {
		port++
		e.Src = netip.AddrPortFrom(e.Src.Addr(), port)
		x.Explain(e, &v)
	}
}

// abortFromListener sets up a listener this process owns and returns a
// reset from its port for a connection the table never saw: Explain names
// the listener's owner, inferred.
func abortFromListener(tb testing.TB) (*explain.Explainer, *sniff.Event) {
	ns := netnstest.New(tb)
	ns.Do(tb, func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:7212")
		if err == nil {
			tb.Cleanup(func() { ln.Close() })
		}
		return err
	})
	t, ok := tb.(*testing.T)
	if !ok {
		t = &testing.T{}
	}
	// No budget: every reset is looked up, none explained from the
	// packet alone.
	x := openIn(t, ns, func(c *explain.Config) { c.Budget = -1 })
	e := &sniff.Event{Segment: sniff.Segment{Family: sniff.IPv4,
		Src: netip.MustParseAddrPort("127.0.0.1:7212"), Dst: netip.MustParseAddrPort("127.0.0.1:40000"),
		Flags: sniff.FlagRST | sniff.FlagACK, Seq: 1, Ack: 1, Window: 512}}
	return x, e
}

// TestIntegrationExplainAbortAllocs: naming the sender of an abort from
// the listener costs no allocation either.
func TestIntegrationExplainAbortAllocs(t *testing.T) {
	x, e := abortFromListener(t)
	var v explain.Verdict
	x.Explain(e, &v)
	if p := v.Sender.Process; v.Cause != explain.Abort || !p.Owned || p.PID != os.Getpid() || p.Seen != explain.ViaListener {
		t.Fatalf("abort from a listener's port: %+v, want the listener's owner %d, seen %q", v, os.Getpid(), explain.ViaListener)
	}
	allocs := testing.AllocsPerRun(200, func() { x.Explain(e, &v) })
	if allocs > 0 {
		t.Fatalf("Explain allocates %.1f times per abort, want 0", allocs)
	}
}

func BenchmarkExplainAbortInferred(b *testing.B) {
	x, e := abortFromListener(b)
	var v explain.Verdict
	b.ReportAllocs()
	for b.Loop() {
		x.Explain(e, &v)
	}
}
