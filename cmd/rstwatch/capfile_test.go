//go:build linux

package main

// Linux only, as they use the helpers of integration_linux_test.go.

import (
	encbin "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/sniff/savefile"
)

// Flag bits for tcpPacket.
const (
	tcpRST = 0x04
	tcpACK = 0x10
)

// tcpPacket builds an IPv4 or IPv6 TCP segment with n bytes of payload. It
// shares no code with package sniff.
func tcpPacket(src, dst netip.AddrPort, flags byte, seq, ack uint32, n int) []byte {
	tcp := make([]byte, 20+n)
	encbin.BigEndian.PutUint16(tcp[0:], src.Port())
	encbin.BigEndian.PutUint16(tcp[2:], dst.Port())
	encbin.BigEndian.PutUint32(tcp[4:], seq)
	encbin.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = 5 << 4
	tcp[13] = flags
	encbin.BigEndian.PutUint16(tcp[14:], 502)
	for i := 20; i < len(tcp); i++ {
		tcp[i] = byte(i)
	}
	if src.Addr().Is4() {
		ip := make([]byte, 20, 20+len(tcp))
		ip[0] = 0x45
		encbin.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		ip[6] = 0x40 // DF
		ip[8], ip[9] = 64, 6
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		return append(ip, tcp...)
	}
	ip := make([]byte, 40, 40+len(tcp))
	ip[0] = 0x60
	encbin.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
	ip[6], ip[7] = 6, 64
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	return append(ip, tcp...)
}

var (
	fileServer = netip.MustParseAddrPort("198.18.0.1:7211")
	fileClient = netip.MustParseAddrPort("198.18.0.2:46000")
)

// writeTestCapture writes a capture of n segments to path: every third one
// (0, 3, 6, ...) a reset, the others data. It returns the file's size after
// each segment, so segment i's record or block starts at ends[i-1].
func writeTestCapture(t *testing.T, path string, pcapng bool, n int) (ends []int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("failed to create capture: %v", err)
	}
	defer f.Close()
	var w savefile.Writer
	if pcapng {
		w = savefile.NewPcapNGWriter(f)
	} else {
		w = savefile.NewPcapWriter(f)
	}
	for i := range n {
		ci := savefile.CaptureInfo{Time: time.Unix(1700000000, int64(i)*1000), Ifindex: 2, Ifname: "eth0", Direction: savefile.DirectionInbound}
		ip := tcpPacket(fileClient, fileServer, tcpACK, uint32(1000*i), 1, 100)
		if i%3 == 0 {
			ip = tcpPacket(fileServer, fileClient, tcpRST|tcpACK, 0, uint32(i), 0)
		}
		if err := w.WritePacket(ci, ip); err != nil {
			t.Fatalf("failed to write packet: %v", err)
		}
		if err := w.Flush(); err != nil {
			t.Fatalf("failed to flush: %v", err)
		}
		fi, err := f.Stat()
		if err != nil {
			t.Fatalf("failed to stat capture: %v", err)
		}
		ends = append(ends, fi.Size())
	}
	return ends
}

// TestReadDamagedFile checks the contract for a truncated or corrupt
// capture file: the resets before the damage are printed, then the
// summary, then one error line that names the file, and the exit code is 1.
func TestReadDamagedFile(t *testing.T) {
	for _, format := range []string{"pcap", "pcapng"} {
		for _, damage := range []string{"truncated_header", "truncated_data", "corrupt_length"} {
			t.Run(format+"/"+damage, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "damaged."+format)
				ends := writeTestCapture(t, path, format == "pcapng", 9)
				// Damage segment 6, the third reset: resets 0 and 3 come
				// before it.
				off := ends[5]
				var want string
				switch damage {
				case "truncated_header":
					must(t, os.Truncate(path, off+6))
					want = "unexpected EOF"
				case "truncated_data":
					must(t, os.Truncate(path, off+30))
					want = "unexpected EOF"
				case "corrupt_length":
					f, err := os.OpenFile(path, os.O_RDWR, 0)
					must(t, err)
					// pcap: incl_len at +8; pcapng: the block's total
					// length at +4. Neither may exceed MaxBlockSize.
					at := off + 8
					if format == "pcapng" {
						at = off + 4
					}
					_, err = f.WriteAt([]byte{0xff, 0xff, 0xff, 0x7f}, at)
					must(t, err)
					must(t, f.Close())
					want = savefile.ErrCorrupt.Error()
				}
				stdout, stderr, code := run(t, exec.Command(binary, "watch", "-r", path))
				if code != 1 {
					t.Errorf("exit code %d, want 1", code)
				}
				lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
				if len(lines) != 2 || !strings.Contains(lines[0], ", ack 0, win 502, length 0") || !strings.Contains(lines[1], ", ack 3, win 502, length 0") {
					t.Errorf("stdout %q, want the two resets before the damage", stdout)
				}
				errLines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
				if len(errLines) != 2 || errLines[0] != fmt.Sprintf("2 resets in %s (6 packets read)", path) {
					t.Fatalf("stderr %q, want the summary and one error line", stderr)
				}
				if e := errLines[1]; !strings.HasPrefix(e, "rstwatch: read "+path+": ") || !strings.Contains(e, want) ||
					!strings.Contains(e, fmt.Sprintf("offset %d", off)) {
					t.Errorf("error line %q, want \"rstwatch: read %s: ...\" naming offset %d and %q", e, path, off, want)
				}
			})
		}
	}
}

// TestReadBadFile checks files that are not captures at all: one error
// line, exit 1, nothing on stdout.
func TestReadBadFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, content, want string
	}{
		{"empty", "", "empty: savefile: reading magic number: unexpected EOF"},
		{"text", "hello, this is not a capture\n", "not a pcap or pcapng file"},
		{"short_pcap_header", "\xd4\xc3\xb2\xa1\x02\x00", "unexpected EOF"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			must(t, os.WriteFile(path, []byte(tt.content), 0o644))
			stdout, stderr, code := run(t, exec.Command(binary, "watch", "-r", path))
			assertOneLineError(t, stdout, stderr, code, exitFailure, tt.want)
		})
	}
	stdout, stderr, code := run(t, exec.Command(binary, "watch", "-r", filepath.Join(dir, "missing")))
	assertOneLineError(t, stdout, stderr, code, exitFailure, "no such file or directory")
}

// TestWriteFlags checks -w and --pcap usage without capturing: the input
// is a capture file.
func TestWriteFlags(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in.pcap")
	writeTestCapture(t, in, false, 9)

	t.Run("pcap_without_write", func(t *testing.T) {
		stdout, stderr, code := run(t, exec.Command(binary, "watch", "--pcap", "-r", in))
		assertOneLineError(t, stdout, stderr, code, exitUsage, "--pcap needs -w FILE")
	})
	t.Run("uncreatable", func(t *testing.T) {
		stdout, stderr, code := run(t, exec.Command(binary, "watch", "-r", in, "-w", "/nonexistent/dir/x.pcapng"))
		assertOneLineError(t, stdout, stderr, code, exitFailure, "cannot write capture file: open /nonexistent/dir/x.pcapng: no such file or directory")
	})
	t.Run("disk_full", func(t *testing.T) {
		stdout, stderr, code := run(t, exec.Command(binary, "watch", "--print", "-r", in, "-w", "/dev/full"))
		if code != exitFailure {
			t.Errorf("exit code %d, want %d", code, exitFailure)
		}
		// The lines were printed before the file failed, and are kept.
		if n := strings.Count(stdout, "\n"); n != 3 {
			t.Errorf("stdout has %d lines, want the 3 resets: %q", n, stdout)
		}
		assertErrorLine(t, stderr, "write /dev/full: ", "no space left on device")
	})
	t.Run("quiet", func(t *testing.T) {
		// tcpdump's convention: -w alone writes the file and prints no
		// reset lines; the summary stays on stderr.
		out := filepath.Join(t.TempDir(), "out.pcapng")
		stdout, stderr, code := run(t, exec.Command(binary, "watch", "-r", in, "-w", out))
		if code != 0 || stdout != "" {
			t.Fatalf("exit code %d, stdout %q; want 0 and nothing (stderr %q)", code, stdout, stderr)
		}
		if !strings.Contains(stderr, "3 resets in ") {
			t.Errorf("stderr %q lacks the summary", stderr)
		}
		again, _, code := run(t, exec.Command(binary, "watch", "-r", out))
		if n := strings.Count(again, "\n"); code != 0 || n != 3 {
			t.Errorf("the file holds %d resets (exit %d), want 3", n, code)
		}
	})
	t.Run("json_without_print", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out.pcapng")
		stdout, stderr, code := run(t, exec.Command(binary, "watch", "--json", "-r", in, "-w", out))
		assertOneLineError(t, stdout, stderr, code, exitUsage, "add --print to print JSON lines too")
	})
	t.Run("print_to_stdout_file", func(t *testing.T) {
		stdout, stderr, code := run(t, exec.Command(binary, "watch", "--print", "-r", in, "-w", "-"))
		assertOneLineError(t, stdout, stderr, code, exitUsage, "--print cannot be used with -w -")
	})
	t.Run("rewrite", func(t *testing.T) {
		// -r with -w: the resets of one file are written to another.
		for _, format := range []string{"pcapng", "pcap"} {
			out := filepath.Join(t.TempDir(), "out."+format)
			args := []string{"watch", "--json", "--print", "-r", in, "-w", out}
			if format == "pcap" {
				args = append(args, "--pcap")
			}
			stdout, stderr, code := run(t, exec.Command(binary, args...))
			if code != 0 {
				t.Fatalf("exit code %d: %s", code, stderr)
			}
			again, stderr, code := run(t, exec.Command(binary, "watch", "--json", "-r", out))
			if code != 0 {
				t.Fatalf("reading the written file: exit code %d: %s", code, stderr)
			}
			if n := strings.Count(stdout, "\n"); n != 3 {
				t.Errorf("%s: printed %d resets, want 3", format, n)
			}
			compareOffline(t, format, jsonLines(t, stdout), jsonLines(t, again))
		}
	})
}

// offlineDiffers lists, by file format, the JSON fields that may differ
// between the resets rstwatch wrote with -w and the same resets read back
// with -r, and why. Every other field must be equal.
var offlineDiffers = map[string]map[string]string{
	"pcapng": {
		// pcapng has no option for an interface index: -r reports the
		// interface's position in the file, counted from 1.
		"ifindex": "interface position in the file",
	},
	"pcap": {
		// The LINUX_SLL2 header has the index, not the name.
		"ifname": "not recorded",
	},
}

// attributionFields are JSON fields about sockets and processes: a live
// capture fills them from the kernel, -r from the packet alone.
var attributionFields = map[string]bool{"cause": true, "sender": true, "target": true}

// compareOffline checks that the resets read back from a capture file are
// the ones printed when it was written, field by field.
func compareOffline(t *testing.T, format string, live, offline []map[string]any) {
	t.Helper()
	if len(live) != len(offline) {
		t.Fatalf("%s: %d resets printed, %d read back", format, len(live), len(offline))
	}
	for i := range live {
		for k, v := range live[i] {
			if _, ok := offlineDiffers[format][k]; ok || attributionFields[k] {
				continue
			}
			if w, ok := offline[i][k]; !ok || fmt.Sprint(w) != fmt.Sprint(v) {
				t.Errorf("%s: reset %d: %s = %v printed, %v read back", format, i, k, v, offline[i][k])
			}
		}
		for k := range offline[i] {
			if _, ok := live[i][k]; !ok {
				t.Errorf("%s: reset %d: field %s read back was not printed", format, i, k)
			}
		}
	}
}

// assertErrorLine checks that stderr has exactly one "rstwatch: " line, the
// last one, and that it holds each of want.
func assertErrorLine(t *testing.T, stderr string, want ...string) {
	t.Helper()
	var errLines []string
	for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if strings.HasPrefix(l, "rstwatch: ") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 || !strings.HasSuffix(stderr, errLines[0]+"\n") {
		t.Fatalf("stderr %q, want one \"rstwatch: \" error line, last", stderr)
	}
	for _, w := range want {
		if !strings.Contains(errLines[0], w) {
			t.Errorf("error line %q lacks %q", errLines[0], w)
		}
	}
	if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
		t.Errorf("stderr has a stack trace: %q", stderr)
	}
}

// readCapture reads a capture file (or stream) with package savefile and
// returns its IP packets, failing the test unless it ends cleanly.
func readCapture(t *testing.T, r io.Reader) (packets [][]byte) {
	t.Helper()
	sr, err := savefile.NewReader(r)
	if err != nil {
		t.Fatalf("failed to read capture header: %v", err)
	}
	for {
		p, err := sr.Next()
		if errors.Is(err, io.EOF) {
			return packets
		}
		if err != nil {
			t.Fatalf("failed to read packet %d: %v", len(packets), err)
		}
		ip, _, ok := savefile.Network(p.LinkType, p.Data)
		if !ok {
			t.Fatalf("packet %d (%v) has no IP packet", len(packets), p.LinkType)
		}
		packets = append(packets, append([]byte(nil), ip...))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadFilter checks that --port and --host select the same resets from
// a file as they do live: the filter runs in a BPF VM on each packet.
func TestReadFilter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mixed.pcapng")
	f, err := os.Create(path)
	must(t, err)
	w := savefile.NewPcapNGWriter(f)
	resets := []string{"198.18.0.1:7211", "198.18.0.1:80", "[2001:db8::1]:7211", "[2001:db8::1]:443", "198.18.0.3:7211"}
	for i, s := range resets {
		server := netip.MustParseAddrPort(s)
		client := netip.MustParseAddrPort("198.18.0.2:46000")
		if server.Addr().Is6() {
			client = netip.MustParseAddrPort("[2001:db8::2]:46000")
		}
		ci := savefile.CaptureInfo{Time: time.Unix(1700000000, int64(i)), Ifindex: 2, Ifname: "eth0", Direction: savefile.DirectionInbound}
		must(t, w.WritePacket(ci, tcpPacket(client, server, tcpACK, 1, 1, 10)))
		must(t, w.WritePacket(ci, tcpPacket(server, client, tcpRST|tcpACK, 1, 11, 0)))
	}
	must(t, w.Flush())
	must(t, f.Close())

	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "198.18.0.1:7211 198.18.0.1:80 [2001:db8::1]:7211 [2001:db8::1]:443 198.18.0.3:7211"},
		{[]string{"--port", "7211"}, "198.18.0.1:7211 [2001:db8::1]:7211 198.18.0.3:7211"},
		{[]string{"--port", "80", "--port", "443"}, "198.18.0.1:80 [2001:db8::1]:443"},
		{[]string{"--host", "2001:db8::1"}, "[2001:db8::1]:7211 [2001:db8::1]:443"},
		{[]string{"--host", "198.18.0.1", "--port", "7211"}, "198.18.0.1:7211"},
		{[]string{"--host", "198.18.0.9"}, ""},
	} {
		t.Run(strings.Join(tt.args, "_"), func(t *testing.T) {
			stdout, stderr, code := run(t, exec.Command(binary, append([]string{"watch", "--json", "-r", path}, tt.args...)...))
			if code != 0 {
				t.Fatalf("exit code %d: %s", code, stderr)
			}
			var got []string
			for _, m := range jsonLines(t, stdout) {
				got = append(got, netip.AddrPortFrom(netip.MustParseAddr(m["src"].(string)), uint16(num(t, m, "src_port"))).String())
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("got resets from %v, want = %s", got, tt.want)
			}
		})
	}
}
