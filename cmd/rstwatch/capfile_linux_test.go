package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/render"
	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// waitLines waits until the watcher has printed n lines on stdout.
func (w *watcher) waitLines(t *testing.T, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for strings.Count(w.stdout.String(), "\n") < n {
		select {
		case <-w.done:
			t.Fatalf("rstwatch exited with %d before printing %d lines: stdout %q, stderr %q", w.code, n, w.stdout.String(), w.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rstwatch printed %d lines in %v, want %d: %q", strings.Count(w.stdout.String(), "\n"), limit, n, w.stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIntegrationCaptureFileRoundTrip is acceptance test 1: resets captured
// live and written with -w (pcapng, and pcap with --pcap) read back with -r
// as the same JSON lines, except the fields documented in offlineDiffers,
// and tshark reads both files without a warning and finds the same resets.
// The captures are stopped with SIGINT and SIGTERM, so the files must be
// complete after a signal.
func TestIntegrationCaptureFileRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		format string
		sig    syscall.Signal
	}{{"pcapng", syscall.SIGINT}, {"pcap", syscall.SIGTERM}} {
		t.Run(tt.format, func(t *testing.T) {
			t.Parallel()
			ns := netnstest.New(t)
			path := filepath.Join(t.TempDir(), "resets."+tt.format)
			args := []string{"watch", "--json", "--print", "-w", path}
			if tt.format == "pcap" {
				args = append(args, "--pcap")
			}
			w := startWatch(t, ns, args...)
			var n int
			for range 3 {
				for _, server := range []string{"127.0.0.1:7211", "[::1]:7211"} {
					s := netip.MustParseAddrPort(server)
					snifftest.Refuse(t, ns, netip.AddrPortFrom(s.Addr(), uint16(49000+n)), s)
					n++
				}
			}
			w.waitLines(t, n, 5*time.Second)
			if err := w.cmd.Process.Signal(tt.sig); err != nil {
				t.Fatalf("failed to signal: %v", err)
			}
			stdout, stderr, code := w.wait(t, 5*time.Second)
			if code != 0 {
				t.Fatalf("exit code %d after %v: %s", code, tt.sig, stderr)
			}
			live := jsonLines(t, stdout)
			if len(live) != n {
				t.Fatalf("printed %d resets, want %d", len(live), n)
			}

			again, stderr, code := run(t, exec.Command(binary, "watch", "--json", "-r", path))
			if code != 0 {
				t.Fatalf("watch -r: exit code %d: %s", code, stderr)
			}
			offline := jsonLines(t, again)
			compareOffline(t, tt.format, live, offline)
			for i, m := range offline {
				// What makes a loopback reset "local" survives the file.
				if m["direction"] != "local" || num(t, m, "ifindex") != 1 {
					t.Errorf("reset %d read back: direction %v, ifindex %v; want local on 1", i, m["direction"], m["ifindex"])
				}
			}

			tshark, err := exec.LookPath("tshark")
			if err != nil {
				t.Skip("skipping the Wireshark check, tshark not installed (apt-get install tshark)")
			}
			rows := tsharkFields(t, tshark, path, "tcp.flags.reset==1", "frame.time_epoch", "ip.src", "ipv6.src", "tcp.srcport", "tcp.dstport", "tcp.ack_raw")
			if len(rows) != n {
				t.Fatalf("tshark finds %d resets in the file, want %d", len(rows), n)
			}
			for i, f := range rows {
				ts, err := epochTime(f[0])
				if err != nil {
					t.Fatalf("bad frame.time_epoch %q: %v", f[0], err)
				}
				m := live[i]
				want := fmt.Sprint(m["time"], m["src"], m["src_port"], m["dst_port"], m["ack"])
				got := fmt.Sprint(ts.UTC().Format(render.JSONTime), f[1]+f[2], f[3], f[4], f[5])
				if got != want {
					t.Errorf("reset %d: tshark reads %s, rstwatch printed %s", i, got, want)
				}
			}
		})
	}
}

// TestIntegrationWriteStdout checks -w -: stdout carries the capture file
// and nothing else, the lines and summary going nowhere and to stderr.
func TestIntegrationWriteStdout(t *testing.T) {
	ns := netnstest.New(t)
	w := startWatch(t, ns, "watch", "-w", "-", "-c", "2")
	snifftest.Refuse(t, ns, netip.MustParseAddrPort("127.0.0.1:49100"), netip.MustParseAddrPort("127.0.0.1:7211"))
	snifftest.Refuse(t, ns, netip.MustParseAddrPort("[::1]:49101"), netip.MustParseAddrPort("[::1]:7211"))
	stdout, stderr, code := w.wait(t, 5*time.Second)
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "2 resets captured") {
		t.Errorf("stderr %q lacks the summary", stderr)
	}
	var resets []string
	for _, ip := range readCapture(t, strings.NewReader(stdout)) {
		// A SYN may be kept for attribution; count the resets.
		if s := decodeTCP(ip); s.rst {
			resets = append(resets, s.String())
		}
	}
	want := []string{"127.0.0.1:7211 > 127.0.0.1:49100", "[::1]:7211 > [::1]:49101"}
	if strings.Join(resets, ", ") != strings.Join(want, ", ") {
		t.Errorf("stdout holds resets %v, want %v", resets, want)
	}
}

// TestIntegrationWriteErrors checks that a capture file that cannot be
// written ends the capture with one error line and exit code 1, keeping
// the lines already printed.
func TestIntegrationWriteErrors(t *testing.T) {
	t.Run("disk_full", func(t *testing.T) {
		ns := netnstest.New(t)
		w := startWatch(t, ns, "watch", "--print", "-w", "/dev/full")
		snifftest.Refuse(t, ns, netip.MustParseAddrPort("127.0.0.1:49200"), netip.MustParseAddrPort("127.0.0.1:7211"))
		// The file is flushed when the reset has been printed and nothing
		// more is waiting: that write fails and ends the capture.
		stdout, stderr, code := w.wait(t, 5*time.Second)
		if code != exitFailure {
			t.Errorf("exit code %d, want %d", code, exitFailure)
		}
		if strings.Count(stdout, "\n") != 1 || !strings.Contains(stdout, "127.0.0.1.7211 > 127.0.0.1.49200: Flags [R.]") {
			t.Errorf("stdout %q, want the reset printed before the write failed", stdout)
		}
		assertErrorLine(t, stderr, "write /dev/full: ", "no space left on device")
	})
	t.Run("no_directory", func(t *testing.T) {
		ns := netnstest.New(t)
		stdout, stderr, code := run(t, ns.Command(binary, "watch", "-w", "/nonexistent/dir/x.pcapng"))
		if code != exitFailure || stdout != "" {
			t.Errorf("exit code %d, stdout %q; want %d and nothing", code, stdout, exitFailure)
		}
		assertErrorLine(t, stderr, "cannot write capture file: open /nonexistent/dir/x.pcapng: no such file or directory")
		if _, err := os.Stat("/nonexistent/dir/x.pcapng"); err == nil {
			t.Errorf("file created")
		}
	})
}

// tcpSummary is what decodeTCP finds in a segment.
type tcpSummary struct {
	src, dst netip.AddrPort
	rst      bool
}

func (s tcpSummary) String() string { return s.src.String() + " > " + s.dst.String() }

// decodeTCP reads the endpoints and RST flag of an IPv4 or IPv6 TCP segment
// without extension headers, independently of package sniff.
func decodeTCP(ip []byte) tcpSummary {
	var src, dst netip.Addr
	var tcp []byte
	switch {
	case len(ip) >= 20 && ip[0]>>4 == 4 && ip[9] == 6:
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		tcp = ip[int(ip[0]&0xf)*4:]
	case len(ip) >= 40 && ip[0]>>4 == 6 && ip[6] == 6:
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		tcp = ip[40:]
	default:
		return tcpSummary{}
	}
	if len(tcp) < 20 {
		return tcpSummary{}
	}
	port := func(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }
	return tcpSummary{
		src: netip.AddrPortFrom(src, port(tcp[0:])),
		dst: netip.AddrPortFrom(dst, port(tcp[2:])),
		rst: tcp[13]&tcpRST != 0,
	}
}

// TestIntegrationReasonLive sends resets that carry a reason (a diagnostic
// payload, and F5 BIG-IP's text) on loopback through a raw socket, and
// checks that a live capture shows the reason in JSON and in the line.
func TestIntegrationReasonLive(t *testing.T) {
	ns := netnstest.New(t)
	wj := startWatch(t, ns, "watch", "--json", "-c", "2", "--port", "7212")
	wt := startWatch(t, ns, "watch", "-c", "2", "--port", "7212")
	server, client := netip.MustParseAddrPort("127.0.0.1:7212"), netip.MustParseAddrPort("127.0.0.1:49300")
	diag := tcpPacket(server, client, tcpRST|tcpACK, 1, 2, 8)
	copy(diag[40:], []byte{0x33, 0xaa, 0x00, 0x01, 0, 0, 0, 0}) // code 1, PEN 0
	const f5 = "BIG-IP: [0x11c5672:3045] {peer} TCP RST from remote system"
	text := tcpPacket(server, client, tcpRST|tcpACK, 1, 2, len(f5))
	copy(text[40:], f5)
	var sockErr error
	ns.Do(t, func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
		if err != nil {
			sockErr = err
			return nil
		}
		defer syscall.Close(fd)
		to := &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
		for _, p := range [][]byte{diag, text} {
			if err := syscall.Sendto(fd, p, 0, to); err != nil {
				return fmt.Errorf("sendto: %w", err)
			}
		}
		return nil
	})
	if errors.Is(sockErr, os.ErrPermission) {
		t.Skipf("skipping, permission denied (try setting CAP_NET_RAW capability): %v", sockErr)
	} else if sockErr != nil {
		t.Fatalf("failed to open a raw socket: %v", sockErr)
	}
	stdout, stderr, code := wj.wait(t, 5*time.Second)
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	var reasons []any
	for _, m := range jsonLines(t, stdout) {
		reasons = append(reasons, m["reason"])
	}
	if want := []any{"code 1 (Illegal option length), pen 0", f5}; fmt.Sprint(reasons) != fmt.Sprint(want) {
		t.Errorf("JSON reasons %q, want %q", reasons, want)
	}
	stdout, stderr, code = wt.wait(t, 5*time.Second)
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "seq 1:9, ack 2, win 502, length 8 [code 1 (Illegal option length), pen 0]") ||
		!strings.Contains(lines[1], fmt.Sprintf("length %d [%s]", len(f5), f5)) {
		t.Errorf("lines %q, want the reasons in brackets after the length", stdout)
	}
}
