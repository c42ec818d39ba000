package explain_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// The scenario of issue 5/7: a server accepts a loopback connection, keeps
// it open for a while, then aborts it with SO_LINGER 0; the client is the
// same process. The reset is captured for real and explained the way the
// CLI does it (SYNs to Observe, resets to Explain, the table refreshed by
// Run), and each verdict is checked for the sender's and the target's pid.

// rig is a namespace with a listener owned by this process, an Explainer
// running as in `rstwatch watch`, and a capture feeding it.
type rig struct {
	ns       *netnstest.NS
	x        *explain.Explainer
	ln       *net.TCPListener
	addr     netip.AddrPort
	verdicts chan seenReset
}

// seenReset is the verdict on one reset from the listener's port.
type seenReset struct {
	dst netip.AddrPort
	v   explain.Verdict
}

func newRig(t *testing.T, port uint16) *rig {
	t.Helper()
	r := &rig{ns: netnstest.New(t), addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), verdicts: make(chan seenReset, 64)}
	r.ns.Do(t, func() error {
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(r.addr))
		r.ln = ln
		return err
	})
	t.Cleanup(func() { r.ln.Close() })
	r.x = openIn(t, r.ns)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); r.x.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })

	sn, err := sniff.Open(&sniff.Config{NetNS: r.ns.Path, Filter: filter.Options{SYN: true}})
	if errors.Is(err, os.ErrPermission) {
		t.Skipf("skipping, permission denied (try CAP_NET_RAW): %v", err)
	}
	if err != nil {
		t.Fatalf("failed to open capture: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The capture loop of `rstwatch watch`: Observe and Explain on
		// one goroutine.
		var ev sniff.Event
		var v explain.Verdict
		for {
			if err := sn.Next(&ev); err != nil {
				return
			}
			if !ev.Flags.Has(sniff.FlagRST) {
				r.x.Observe(&ev)
				continue
			}
			r.x.Explain(&ev, &v)
			if ev.Src == r.addr {
				select {
				case r.verdicts <- seenReset{ev.Dst, v}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { sn.Close(); <-done })
	return r
}

// dial connects a client to the listener from inside the namespace.
func (r *rig) dial(t *testing.T) *net.TCPConn {
	t.Helper()
	var c *net.TCPConn
	r.ns.Do(t, func() (err error) {
		c, err = net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(r.addr))
		return err
	})
	return c
}

// verdictFor waits up to within for the verdict on the reset sent to
// client.
func (r *rig) verdictFor(t *testing.T, client netip.AddrPort, within time.Duration) explain.Verdict {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case s := <-r.verdicts:
			if s.dst == client {
				return s.v
			}
		case <-deadline:
			t.Fatalf("no reset to %v captured within %v", client, within)
		}
	}
}

// abortAfter makes one connection, holds it for hold and aborts it from
// the server side; it returns the verdict on the reset.
func (r *rig) abortAfter(t *testing.T, hold time.Duration) explain.Verdict {
	t.Helper()
	c := r.dial(t)
	defer c.Close()
	sc, err := r.ln.AcceptTCP()
	if err != nil {
		t.Fatalf("failed to accept: %v", err)
	}
	if hold > 0 {
		time.Sleep(hold)
	}
	if err := sc.SetLinger(0); err != nil {
		t.Fatalf("failed to set SO_LINGER: %v", err)
	}
	sc.Close()
	return r.verdictFor(t, c.LocalAddr().(*net.TCPAddr).AddrPort(), 3*time.Second)
}

// row is one column of the table: how often a connection that
// lived hold had its sender and target named.
type row struct {
	hold                     time.Duration
	runs                     int
	sender, target, inferred int // named by pid; sender inferred from the listener
}

func pct(n, of int) string { return fmt.Sprintf("%d%%", (100*n+of/2)/max(of, 1)) }

// table prints rows as the issue does.
func table(rows []row) string {
	var b strings.Builder
	line := func(name string, cell func(r row) string) {
		fmt.Fprintf(&b, "| %-24s |", name)
		for _, r := range rows {
			fmt.Fprintf(&b, " %6s |", cell(r))
		}
		b.WriteByte('\n')
	}
	line("connection lived", func(r row) string { return fmtHold(r.hold) })
	fmt.Fprintf(&b, "|%s|%s\n", strings.Repeat("-", 26), strings.Repeat("--------|", len(rows)))
	line("sender named", func(r row) string { return pct(r.sender, r.runs) })
	line(`  of which "listener"`, func(r row) string { return pct(r.inferred, r.runs) })
	line("target named", func(r row) string { return pct(r.target, r.runs) })
	return b.String()
}

func fmtHold(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%g s", d.Seconds())
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

// holdsFromEnv reads RSTWATCH_SHORTLIVED_HOLDS ("0,10ms,1s"), else def.
func holdsFromEnv(t *testing.T, def []time.Duration) []time.Duration {
	s := os.Getenv("RSTWATCH_SHORTLIVED_HOLDS")
	if s == "" {
		return def
	}
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		if f == "0" {
			out = append(out, 0)
			continue
		}
		d, err := time.ParseDuration(f)
		if err != nil {
			t.Fatalf("bad RSTWATCH_SHORTLIVED_HOLDS %q: %v", s, err)
		}
		out = append(out, d)
	}
	return out
}

// TestIntegrationShortLived measures the table: the share of
// aborted loopback connections whose sender and target processes Explain
// names, by how long the connection lived. cmd/rststorm/attrib.sh runs it
// with every column; CI runs the 50 ms and 1 s ones and asserts them.
func TestIntegrationShortLived(t *testing.T) {
	holds := holdsFromEnv(t, []time.Duration{50 * time.Millisecond, time.Second})
	runs := 20
	r := newRig(t, 7500)
	pid := os.Getpid()
	var rows []row
	for _, hold := range holds {
		rw := row{hold: hold, runs: runs}
		for range runs {
			// Runs start at random phases of the refresh ticker.
			time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
			v := r.abortAfter(t, hold)
			if p := v.Sender.Process; p.Owned && p.PID == pid {
				rw.sender++
				if p.Seen == explain.ViaListener {
					rw.inferred++
				}
			}
			if p := v.Target.Process; p.Owned && p.PID == pid {
				rw.target++
			} else if os.Getenv("RSTWATCH_SHORTLIVED_VERBOSE") != "" {
				t.Logf("hold %v: target not named: %+v", hold, p)
			}
			if p := v.Sender.Process; p.Owned && p.PID != pid {
				t.Errorf("hold %v: sender named pid %d, want %d: %+v", hold, p.PID, pid, p)
			}
		}
		rows = append(rows, rw)
	}
	t.Logf("%d runs per column, loopback, client and server in pid %d:\n%s", runs, pid, table(rows))
	for _, rw := range rows {
		// Margins for a loaded 2-core machine (measured: 100% in every
		// cell at 50 ms and 1 s, also with load averages of 5 to 8): the
		// targets are 95% for the sender and 90% for the target at 100 ms
		// and more; a refresh or an owner search delayed by a busy CPU
		// costs a run or a few.
		var minSender, minTarget int
		switch rw.hold {
		case 50 * time.Millisecond:
			minSender, minTarget = 17, 14
		case time.Second:
			minSender, minTarget = 17, 17
		default:
			continue
		}
		if rw.sender < minSender || rw.target < minTarget {
			t.Errorf("connections held %v: sender named in %d and target in %d of %d runs, want at least %d and %d",
				rw.hold, rw.sender, rw.target, rw.runs, minSender, minTarget)
		}
	}
}

// childEnv makes the test binary a child that inherited an accepted
// connection as fd 3: it holds it for the given duration and aborts it.
const childEnv = "RSTWATCH_EXPLAIN_ABORT_CHILD"

func TestHelperAbortChild(t *testing.T) {
	hold, err := time.ParseDuration(os.Getenv(childEnv))
	if err != nil {
		return // not the helper process of TestIntegrationShortLivedForkedChild: nothing to do
	}
	c, err := net.FileConn(os.NewFile(3, "conn"))
	if err != nil {
		t.Fatalf("failed to use fd 3: %v", err)
	}
	time.Sleep(hold)
	if err := c.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatalf("failed to set SO_LINGER: %v", err)
	}
	c.Close()
}

// TestIntegrationShortLivedForkedChild is the case where inferring the
// sender from the listener is wrong: the server hands each connection to a
// child process, which aborts it. A connection that lived long enough for
// a refresh names the child; one that did not names the listener's owner,
// and the verdict must mark that as inferred ("seen": "listener"), never as
// seen live or recently.
func TestIntegrationShortLivedForkedChild(t *testing.T) {
	r := newRig(t, 7501)
	parent := os.Getpid()
	for _, tt := range []struct {
		hold     time.Duration
		runs     int
		minChild int // runs that must name the child
	}{
		{0, 5, 0},
		// Long enough for two full dumps even when each is paced to
		// 100 times its cost on a host with many sockets.
		{3 * time.Second, 3, 2},
	} {
		child, inferred := 0, 0
		for range tt.runs {
			c := r.dial(t)
			sc, err := r.ln.AcceptTCP()
			if err != nil {
				t.Fatalf("failed to accept: %v", err)
			}
			f, err := sc.File()
			sc.Close()
			if err != nil {
				t.Fatalf("failed to get the connection's file: %v", err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAbortChild$")
			cmd.Env = append(os.Environ(), childEnv+"="+tt.hold.String())
			cmd.ExtraFiles = []*os.File{f}
			if err := cmd.Start(); err != nil {
				t.Fatalf("failed to start the child: %v", err)
			}
			f.Close() // the child holds the only descriptor now
			v := r.verdictFor(t, c.LocalAddr().(*net.TCPAddr).AddrPort(), tt.hold+3*time.Second)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("child failed: %v", err)
			}
			c.Close()
			p := v.Sender.Process
			if os.Getenv("RSTWATCH_SHORTLIVED_VERBOSE") != "" {
				t.Logf("hold %v: child %d: sender %+v", tt.hold, cmd.Process.Pid, p)
			}
			switch {
			case !p.Owned:
				t.Errorf("hold %v: sender not named at all: %+v", tt.hold, p)
			case p.PID == cmd.Process.Pid && p.Seen != explain.ViaListener:
				child++
			case p.PID == parent && p.Seen == explain.ViaListener:
				inferred++ // wrong, and marked as a guess
			default:
				t.Errorf("hold %v: sender %+v; want the child %d, or the parent %d marked %q",
					tt.hold, p, cmd.Process.Pid, parent, explain.ViaListener)
			}
		}
		t.Logf("child held the connection %v: named the child in %d of %d runs, inferred the listener's owner in %d", tt.hold, child, tt.runs, inferred)
		if child < tt.minChild {
			t.Errorf("child held the connection %v: named the child in %d of %d runs, want at least %d", tt.hold, child, tt.runs, tt.minChild)
		}
	}
}
