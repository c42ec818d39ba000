package proc

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// benchSockets returns n varied sockets, two thirds IPv4, a third IPv6.
func benchSockets(n int) []Socket {
	ss := make([]Socket, n)
	for i := range ss {
		s := Socket{State: State(1 + i%11), RecvQ: uint32(i % 7), SendQ: uint32(i % 5), UID: uint32(i % 1000), Inode: uint64(100000 + i), Cookie: uint64(i + 1)}
		if i%3 == 2 {
			s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)}), uint16(1024+i))
			s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: 1}), 443)
		} else {
			s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), uint16(1024+i))
			s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 443)
		}
		ss[i] = s
	}
	return ss
}

var sinkSockets []Socket

func BenchmarkParseNetTCP10k(b *testing.B) {
	var text strings.Builder
	text.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	for i, s := range benchSockets(10000) {
		text.WriteString(formatNetTCPLine(i, s))
		text.WriteByte('\n')
	}
	in := []byte(text.String())
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	dst := make([]Socket, 0, 10000)
	for b.Loop() {
		var err error
		dst, err = AppendNetTCP(dst[:0], bytes.NewReader(in))
		if err != nil || len(dst) != 10000 {
			b.Fatalf("failed to parse: %d sockets, %v", len(dst), err)
		}
	}
	sinkSockets = dst
}

// diagDatagrams encodes ss as a sock_diag dump split into datagrams of at
// most 32 KiB, as the kernel sends them, ending with NLMSG_DONE.
func diagDatagrams(ss []Socket) [][]byte {
	var out [][]byte
	var cur []byte
	for _, s := range ss {
		m := encodeSocket(s)
		if len(cur)+len(m) > 32<<10 {
			out = append(out, cur)
			cur = nil
		}
		cur = append(cur, m...)
	}
	return append(out, append(cur, nlmsg(nlmsgDone, 2, 1, []byte{0, 0, 0, 0})...))
}

func BenchmarkDecodeDiag10k(b *testing.B) {
	ss := benchSockets(10000)
	for i := range ss {
		ss[i].CgroupID = uint64(i)
	}
	dgs := diagDatagrams(ss)
	var n int64
	for _, d := range dgs {
		n += int64(len(d))
	}
	b.SetBytes(n)
	b.ReportAllocs()
	dst := make([]Socket, 0, 10000)
	for b.Loop() {
		dst = dst[:0]
		for _, d := range dgs {
			var err error
			if dst, _, err = decodeDiag(d, 1, dst); err != nil {
				b.Fatalf("failed to decode: %v", err)
			}
		}
	}
	if len(dst) != 10000 {
		b.Fatalf("decoded %d sockets, want 10000", len(dst))
	}
	sinkSockets = dst
}

// fakeProcTree builds n fake processes with 8 fds each, 3 of them sockets.
func fakeProcTree(b *testing.B, n int) string {
	root := b.TempDir()
	ino := uint64(1)
	for pid := 1; pid <= n; pid++ {
		fakeProc(b, root, pid, fmt.Sprintf("proc%d", pid), uint32(pid), "/system.slice/x.service", ino, ino+1, ino+2)
		ino += 3
		for fd := 6; fd < 9; fd++ {
			addSocketFDOrFile(b, root, pid, fd)
		}
	}
	return root
}

func addSocketFDOrFile(b *testing.B, root string, pid, fd int) {
	b.Helper()
	if err := symlink("/var/log/x.log", fmt.Sprintf("%s/%d/fd/%d", root, pid, fd)); err != nil {
		b.Fatalf("failed to build fake /proc: %v", err)
	}
}

func BenchmarkOwnersRefresh1000(b *testing.B) {
	root := fakeProcTree(b, 1000)
	p, err := NewFS(root)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("initial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			o := NewOwners(p, nil)
			if err := o.Refresh(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("idle", func(b *testing.B) {
		o := NewOwners(p, nil)
		if err := o.Refresh(); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := o.Refresh(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rescan_after_miss", func(b *testing.B) {
		o := NewOwners(p, &OwnersConfig{RescanInterval: 1})
		if err := o.Refresh(); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			o.Lookup(1 << 40)
			if err := o.Refresh(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTableRefresh10k(b *testing.B) {
	src := &fakeSource{}
	src.set(benchSockets(10000)...)
	tab := NewTable(src, nil, nil)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := tab.Refresh(at(0).Add(timeSecond(i))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTableConn(b *testing.B) {
	src := &fakeSource{}
	ss := benchSockets(10000)
	src.set(ss...)
	tab := NewTable(src, nil, nil)
	if err := tab.Refresh(at(0)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s := &ss[i%len(ss)]
		if _, ok := tab.Conn(s.Local, s.Remote); !ok && s.State != Listen {
			b.Fatalf("conn %v not found", s)
		}
		i++
	}
}
