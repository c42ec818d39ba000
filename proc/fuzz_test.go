package proc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// formatNetTCPLine renders s the way the kernel prints a /proc/net/tcp{,6}
// line on this host (see parseProcAddrPort for the byte order).
func formatNetTCPLine(sl int, s Socket) string {
	addr := func(a Socket, remote bool) string {
		p := a.Local
		if remote {
			p = a.Remote
		}
		var b strings.Builder
		if p.Addr().Is4() {
			v := p.Addr().As4()
			fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(v[:]))
		} else {
			v := p.Addr().As16()
			for k := 0; k < 4; k++ {
				fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(v[4*k:]))
			}
		}
		fmt.Fprintf(&b, ":%04X", p.Port())
		return b.String()
	}
	return fmt.Sprintf("%4d: %s %s %02X %08X:%08X 00:00000000 00000000 %5d        0 %d 1 0000000000000000 100 0 0 10 0",
		sl, addr(s, false), addr(s, true), uint8(s.State), s.SendQ, s.RecvQ, s.UID, s.Inode)
}

func addFixtureLines(f *testing.F, paths ...string) {
	for _, p := range paths {
		for line := range bytes.Lines(nativeNetTCP(f, p)) {
			f.Add(bytes.TrimRight(line, "\n"))
		}
	}
}

// netTCPByteOrder holds addresses as the kernel prints them on a
// little-endian and on a big-endian host: a fixed expectation per byte
// order, which a parser and a formatter that share one wrong order would
// both fail (the round trip below cannot tell).
var netTCPByteOrder = []struct {
	le, be string
	want   netip.AddrPort
}{
	{"0100007F:1F90", "7F000001:1F90", ap("127.0.0.1:8080")},
	{"0202000A:0016", "0A000202:0016", ap("10.0.2.2:22")},
	{"0000000000000000FFFF00000100007F:0050", "00000000000000000000FFFF7F000001:0050", ap("[::ffff:127.0.0.1]:80")},
	{"B80D0120000000000000000001000000:01BB", "20010DB8000000000000000000000001:01BB", ap("[2001:db8::1]:443")},
}

// checkNetTCPByteOrder parses and formats the addresses of netTCPByteOrder
// in this host's order.
func checkNetTCPByteOrder(tb testing.TB) {
	tb.Helper()
	for _, tt := range netTCPByteOrder {
		text := tt.be
		if littleEndian {
			text = tt.le
		}
		line := "   0: " + text + " " + text + " 01 00000000:00000000 00:00000000 00000000     0        0 7 1 0 20 4 30 10 -1"
		s, err := parseNetTCPLine([]byte(line))
		if err != nil || s.Local != tt.want || s.Remote != tt.want {
			tb.Fatalf("%s (little-endian host: %t) parsed to %v, %v, %v; want %v", text, littleEndian, s.Local, s.Remote, err, tt.want)
		}
		if got := formatNetTCPLine(0, s); !strings.Contains(got, " "+text+" "+text+" ") {
			tb.Fatalf("%v formatted as %q, want %s (little-endian host: %t)", tt.want, got, text, littleEndian)
		}
	}
}

func TestParseNetTCPByteOrder(t *testing.T) { checkNetTCPByteOrder(t) }

// FuzzParseNetTCP checks that a line either fails with ErrParse or parses to
// a socket that, printed back the kernel's way, parses to the same socket;
// checkNetTCPByteOrder pins the order that round trip cannot check.
func FuzzParseNetTCP(f *testing.F) {
	checkNetTCPByteOrder(f)
	addFixtureLines(f, fixtureRoot+"/net/tcp", fixtureRoot+"/net/tcp6", recordedRoot+"/net/tcp", recordedRoot+"/net/tcp6")
	f.Fuzz(func(t *testing.T, line []byte) {
		s, err := parseNetTCPLine(line)
		if err != nil {
			if !strings.Contains(err.Error(), "proc: parse error") {
				t.Fatalf("error %v does not wrap ErrParse", err)
			}
			return
		}
		again, err := parseNetTCPLine([]byte(formatNetTCPLine(0, s)))
		if err != nil || again != s {
			t.Fatalf("roundtrip of %+v = %+v, %v", s, again, err)
		}
	})
}

// FuzzParseSNMP checks that counters parse without panicking and that
// every key is "Prefix.Name".
func FuzzParseSNMP(f *testing.F) {
	for _, p := range []string{fixtureRoot + "/net/snmp", fixtureRoot + "/net/netstat"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatalf("failed to read seed: %v", err)
		}
		f.Add(b)
	}
	f.Add([]byte("Tcp: MaxConn\nTcp: -1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseSNMP(bytes.NewReader(b), nil)
		if err != nil {
			return
		}
		for k := range c {
			if p, n, ok := strings.Cut(k, "."); !ok || p == "" || n == "" {
				t.Fatalf("bad counter key %q", k)
			}
		}
	})
}

// encodeSocket renders s as a SOCK_DIAG_BY_FAMILY message with the
// attributes the decoder keeps.
func encodeSocket(s Socket) []byte {
	var attrs [][]byte
	if s.CgroupID != 0 {
		attrs = append(attrs, rtattr(inetDiagCgroupID, u64(s.CgroupID)))
	}
	if s.V6Only {
		attrs = append(attrs, rtattr(inetDiagSKV6Only, []byte{1}))
	}
	return nlmsg(sockDiagByFamily, 2, 1, inetDiagMsg(s, attrs...))
}

// FuzzDecodeDiag checks that decoding never panics, never reads past its
// input, and that decoded sockets re-encode to messages that decode to the
// same sockets.
func FuzzDecodeDiag(f *testing.F) {
	for _, name := range []string{"dump4.hex", "dump6.hex", "lookup_found.hex", "lookup_missing.hex"} {
		for _, m := range readNativeHexFixture(f, recordedRoot+"/"+name) {
			f.Add(m)
		}
	}
	f.Add(encodeSocket(Socket{Local: ap("[::1]:1"), Remote: ap("[::1]:2"), State: Established, CgroupID: 9, V6Only: true}))
	f.Add(nlmsg(nlmsgDone, 2, 1, []byte{0, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, b []byte) {
		b = b[:len(b):len(b)]
		got, _, err := decodeDiag(b, 0, nil)
		if err != nil {
			return
		}
		for _, s := range got {
			s.IfIndex &= 0xffffffff
			s.Inode &= 0xffffffff
			again, _, err := decodeDiag(encodeSocket(s), 0, nil)
			if err != nil || len(again) != 1 || again[0] != s {
				t.Fatalf("roundtrip of %+v = %+v, %v", s, again, err)
			}
		}
	})
}

// statusUIDReference is statusUID as it was written first (a line scanner
// and bytes.Fields), kept to check the allocation-free one against.
func statusUIDReference(b []byte) uint32 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("Uid:")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				if v, ok := parseDec(f[0], 32); ok {
					return uint32(v)
				}
			}
			return 0
		}
	}
	return 0
}

// FuzzProcFiles checks the parsers of a process's small /proc files
// (status, cgroup, an fd link) for panics, and statusUID against the
// reference on plain ASCII text, where the two must agree.
func FuzzProcFiles(f *testing.F) {
	f.Add([]byte("Name:\tnginx\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t33\t33\t33\t33\nGid:\t0\t0\t0\t0\n"))
	f.Add([]byte("Uid: 4294967295 0\n"))
	f.Add([]byte("Uid:\t4294967296\n"))
	f.Add([]byte("0::/system.slice/nginx.service\n"))
	f.Add([]byte("12:memory:/docker/abc\n1:name=systemd:/\n"))
	f.Add([]byte("socket:[123456]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		uid := statusUID(b)
		_ = cgroupPath(b)
		_, _ = socketInode(b)
		plain := len(b) < 60000
		for _, c := range b {
			if c != '\n' && c != '\t' && (c < ' ' || c > '~') {
				plain = false
			}
		}
		if plain {
			if want := statusUIDReference(b); uid != want {
				t.Fatalf("statusUID(%q) = %d, the reference %d", b, uid, want)
			}
		}
	})
}
