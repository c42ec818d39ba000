package main

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// These tests read rstwatch's output while it keeps running: a reset must
// be printed and written within the flush bound, whatever ends the batch it
// arrived in (a forwarded duplicate, a SYN kept for attribution, a packet
// that does not decode), and not wait for the next reset.

// flushBound is how long a test waits for a reset to appear: the pipeline
// flushes within 100 ms; the rest is margin for a loaded machine.
const flushBound = 2 * time.Second

// waitOutput waits until rstwatch's stdout holds want and the -w file holds
// a reset, while rstwatch is still running.
func waitOutput(t *testing.T, w *watcher, want, file string) {
	t.Helper()
	deadline := time.Now().Add(flushBound)
	for {
		out, resets := w.stdout.String(), fileResets(file)
		if strings.Contains(out, want) && resets > 0 {
			break
		}
		select {
		case <-w.done:
			t.Fatalf("rstwatch exited (%d) before the reset was shown: %q", w.code, w.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, stdout %q (want %q) and %d resets in the -w file (want 1): output waits for the next reset", flushBound, out, want, resets)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fileResets counts the resets readable from the capture file so far.
func fileResets(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	fr, err := sniff.NewFileReader(f, filter.Options{})
	if err != nil {
		return 0
	}
	n := 0
	var e sniff.Event
	for fr.Next(&e) == nil {
		if e.Flags.Has(sniff.FlagRST) {
			n++
		}
	}
	return n
}

// TestIntegrationFlushSYNAfterReset: a refused connect, then at once a
// connect to a live listener, whose SYN (passed for attribution) ends the
// batch.
func TestIntegrationFlushSYNAfterReset(t *testing.T) {
	ns := netnstest.New(t)
	file := filepath.Join(t.TempDir(), "out.pcapng")
	var ln net.Listener
	ns.Do(t, func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:7300")
		return err
	})
	defer ln.Close()
	w := startWatch(t, ns, "watch", "-i", "lo", "--json", "--print", "-w", file)
	snifftest.Refuse(t, ns, netip.AddrPort{}, netip.MustParseAddrPort("127.0.0.1:7211"))
	ns.Do(t, func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:7300", time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	waitOutput(t, w, `"src_port":7211`, file)
}

// TestIntegrationFlushForwardedDuplicate: on a router, a reset crosses two
// interfaces; the second copy is a duplicate, dropped, and ends the batch.
func TestIntegrationFlushForwardedDuplicate(t *testing.T) {
	client, router, server := netnstest.New(t), netnstest.New(t), netnstest.New(t)
	netnstest.Link(t, client, "ca", []netip.Prefix{netip.MustParsePrefix("198.18.1.2/24")}, router, "ra", []netip.Prefix{netip.MustParsePrefix("198.18.1.1/24")})
	netnstest.Link(t, router, "rb", []netip.Prefix{netip.MustParsePrefix("198.18.2.1/24")}, server, "sb", []netip.Prefix{netip.MustParsePrefix("198.18.2.2/24")})
	router.Sysctl(t, "net.ipv4.ip_forward", "1")
	client.IP(t, "route", "add", "default", "via", "198.18.1.1")
	server.IP(t, "route", "add", "default", "via", "198.18.2.1")
	file := filepath.Join(t.TempDir(), "out.pcapng")
	w := startWatch(t, router, "watch", "--print", "-w", file)
	snifftest.Refuse(t, client, netip.AddrPort{}, netip.MustParseAddrPort("198.18.2.2:7211"))
	waitOutput(t, w, "198.18.2.2.7211 > 198.18.1.2.", file)
}

// TestIntegrationFlushUndecodableTail: a reset followed by a packet that
// passes the kernel filter (RST bit set) but does not decode (TCP data
// offset below 5 words).
func TestIntegrationFlushUndecodableTail(t *testing.T) {
	ns := netnstest.New(t)
	file := filepath.Join(t.TempDir(), "out.pcapng")
	w := startWatch(t, ns, "watch", "-i", "lo", "--json", "--no-explain", "--print", "-w", file)
	ns.Do(t, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
		for _, doff := range []byte{5, 2} { // a reset, then the undecodable one
			pkt := snifftest.IPv4Segment(netip.MustParseAddrPort("127.0.0.1:7211"), netip.MustParseAddrPort("127.0.0.1:40000"), sniff.FlagRST|sniff.FlagACK, 12345, doff)
			if err := unix.Sendto(fd, pkt, 0, to); err != nil {
				return err
			}
		}
		return nil
	})
	waitOutput(t, w, `"src_port":7211`, file)
}

// TestIntegrationReadFIFOInterrupted: -r of a FIFO that no writer opens
// ends on SIGINT with one error line, instead of waiting for SIGKILL.
func TestIntegrationReadFIFOInterrupted(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []os.Signal{os.Interrupt, unix.SIGTERM} {
		w := &watcher{done: make(chan struct{})}
		cmd := exec.Command(binary, "-r", fifo)
		w.cmd = cmd
		cmd.Stdout, cmd.Stderr = &w.stdout, &w.stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			err := cmd.Wait()
			var ee interface{ ExitCode() int }
			if errors.As(err, &ee) {
				w.code = ee.ExitCode()
			}
			close(w.done)
		}()
		time.Sleep(300 * time.Millisecond) // blocked in open(2) by now
		cmd.Process.Signal(sig)
		_, stderr, code := w.wait(t, 5*time.Second)
		if code == 0 || !strings.Contains(stderr, fifo) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want one error line naming the FIFO and a non-zero exit", sig, code, stderr)
		}
	}
}

// TestIntegrationInterfaceGone: with -i naming one interface, deleting it
// ends rstwatch with one error line and exit 1, as tcpdump does; with two,
// the capture goes on and says so.
func TestIntegrationInterfaceGone(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	netnstest.Link(t, a, "gone0", []netip.Prefix{netip.MustParsePrefix("198.18.5.1/24")}, b, "peer0", []netip.Prefix{netip.MustParsePrefix("198.18.5.2/24")})
	netnstest.Link(t, a, "gone1", []netip.Prefix{netip.MustParsePrefix("198.18.6.1/24")}, b, "peer1", []netip.Prefix{netip.MustParsePrefix("198.18.6.2/24")})

	two := startWatch(t, a, "watch", "-i", "gone0", "-i", "gone1")
	one := startWatch(t, a, "watch", "-i", "gone0")
	a.IP(t, "link", "del", "gone0")
	stdout, stderr, code := one.wait(t, 5*time.Second)
	if code != 1 || stdout != "" || !strings.HasSuffix(stderr, "\nrstwatch: interface gone0 went away\n") {
		t.Errorf("-i gone0: exit %d, stdout %q, stderr %q; want exit 1, the summary, then one error line", code, stdout, stderr)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(two.stderr.String(), "gone0 went away") {
		if time.Now().After(deadline) {
			t.Fatalf("with two interfaces, nothing said the first went away: %q", two.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-two.done:
		t.Fatalf("with two interfaces, rstwatch ended (%d): %q", two.code, two.stderr.String())
	default:
	}
}
