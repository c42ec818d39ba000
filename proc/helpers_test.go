package proc

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// fixtureRoot is the shared /proc fixture tree (see ../testdata/proc).
const fixtureRoot = "../testdata/proc"

// recordedRoot holds what TestIntegrationDumpMatchesProc recorded with
// -update on Linux: sock_diag replies as hex and the same namespace's
// /proc/net/tcp{,6}.
const recordedRoot = fixtureRoot + "/ns"

// littleEndian reports whether this host is little-endian. The /proc and
// netlink fixtures were recorded on one, in its (native) order; the helpers
// below rewrite them into this host's order, so that on a big-endian host
// the parsers meet what that host's kernel would write.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// fromLE rewrites a field recorded little-endian into this host's order.
func fromLE(b []byte) {
	if !littleEndian {
		slices.Reverse(b)
	}
}

// nativeNetTCP returns a recorded /proc/net/tcp{,6} file in this host's
// order. The kernel prints each 32-bit word of an address as a native
// integer (%08X); ports and everything else are printed as numbers.
func nativeNetTCP(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("failed to read fixture: %v", err)
	}
	var out []byte
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) < 3 || !bytes.HasSuffix(f[0], []byte(":")) {
			out = append(out, line...) // the header
			continue
		}
		// Rewrite local_address and rem_address in place.
		line = bytes.Clone(line)
		at := 0
		for _, field := range f[1:3] {
			i := at + bytes.Index(line[at:], field)
			addr, _, ok := bytes.Cut(line[i:i+len(field)], []byte(":"))
			if !ok || len(addr)%8 != 0 {
				t.Fatalf("%s: bad address field %q", path, field)
			}
			for w := 0; w < len(addr); w += 8 {
				v, err := hex.DecodeString(string(addr[w : w+8]))
				if err != nil {
					t.Fatalf("%s: bad address field %q: %v", path, field, err)
				}
				fromLE(v)
				copy(addr[w:], strings.ToUpper(hex.EncodeToString(v)))
			}
			at = i + len(field)
		}
		out = append(out, line...)
	}
	return out
}

// nativeRoot copies a recorded /proc tree into a temporary directory, with
// net/tcp and net/tcp6 in this host's order (nativeNetTCP).
func nativeRoot(t testing.TB, root string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		var b []byte
		if rel == filepath.Join("net", "tcp") || rel == filepath.Join("net", "tcp6") {
			b = nativeNetTCP(t, path)
		} else if b, err = os.ReadFile(path); err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	if err != nil {
		t.Fatalf("failed to copy fixture tree %s: %v", root, err)
	}
	return dst
}

// nativeDiag rewrites one recorded netlink datagram (sock_diag replies,
// NLMSG_DONE, NLMSG_ERROR quoting an inet_diag_req_v2) into this host's
// order: every integer the kernel writes natively is swapped on a
// big-endian host, the network-order ports and addresses are left alone.
// An attribute whose layout it does not know fails the test.
func nativeDiag(t testing.TB, b []byte) []byte {
	t.Helper()
	b = bytes.Clone(b)
	u16 := func(o int) { fromLE(b[o : o+2]) }
	u32 := func(o int) { fromLE(b[o : o+4]) }
	u64 := func(o int) { fromLE(b[o : o+8]) }
	hdr := func(o int) { u32(o); u16(o + 4); u16(o + 6); u32(o + 8); u32(o + 12) }
	// inet_diag_sockid: ports and addresses in network order, then the
	// interface and the two cookie words natively.
	sockid := func(o int) { u32(o + 36); u32(o + 40); u32(o + 44) }
	for o := 0; o+sizeofNlMsghdr <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[o:]))
		typ := binary.LittleEndian.Uint16(b[o+4:])
		if n < sizeofNlMsghdr || o+n > len(b) {
			t.Fatalf("bad netlink message length %d at %d", n, o)
		}
		hdr(o)
		switch p := o + sizeofNlMsghdr; typ {
		case sockDiagByFamily: // inet_diag_msg, then attributes
			sockid(p + 4)
			for k := range 5 { // expires, rqueue, wqueue, uid, inode
				u32(p + 52 + 4*k)
			}
			for a := p + 72; a+4 <= o+n; {
				al := int(binary.LittleEndian.Uint16(b[a:]))
				at := binary.LittleEndian.Uint16(b[a+2:])
				u16(a)
				u16(a + 2)
				switch at {
				case 8, 11: // INET_DIAG_SHUTDOWN, INET_DIAG_SKV6ONLY: u8
				case 15: // INET_DIAG_MARK: u32
					u32(a + 4)
				case inetDiagCgroupID: // u64
					u64(a + 4)
				case 22: // INET_DIAG_SOCKOPT: u16 of bits
					u16(a + 4)
				default:
					t.Fatalf("no byte-order rule for sock_diag attribute %d", at)
				}
				a += (al + 3) &^ 3
			}
		case nlmsgDone:
			u32(p)
		case nlmsgError: // error, the request's header, inet_diag_req_v2
			u32(p)
			hdr(p + 4)
			if n >= sizeofNlMsghdr+4+sizeofNlMsghdr+56 {
				u32(p + 20 + 4) // idiag_states
				sockid(p + 20 + 8)
			}
		default:
			t.Fatalf("no byte-order rule for netlink message type %d", typ)
		}
		o += (n + 3) &^ 3
	}
	return b
}

// readNativeHexFixture is readHexFixture in this host's order.
func readNativeHexFixture(t testing.TB, path string) [][]byte {
	t.Helper()
	msgs := readHexFixture(t, path)
	for i, m := range msgs {
		msgs[i] = nativeDiag(t, m)
	}
	return msgs
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// diffSockets returns a readable difference of want and got, or "".
func diffSockets(want, got []Socket) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	var b strings.Builder
	n := max(len(want), len(got))
	for i := range n {
		var w, g string
		if i < len(want) {
			w = fmt.Sprintf("%+v", want[i])
		}
		if i < len(got) {
			g = fmt.Sprintf("%+v", got[i])
		}
		if w != g {
			fmt.Fprintf(&b, "[%d]\n-%s\n+%s\n", i, w, g)
		}
	}
	return b.String()
}

func mustOpen(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("failed to open fixture: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func symlink(target, path string) error { return os.Symlink(target, path) }

func timeSecond(i int) time.Duration { return time.Duration(i) * time.Second }
