package proc

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/netip"

	"strings"
	"syscall"
	"testing"
)

// readHexFixture reads one netlink datagram per non-comment line.
func readHexFixture(t testing.TB, path string) [][]byte {
	t.Helper()
	f := mustOpen(t, path)
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatalf("failed to decode %s: %v", path, err)
		}
		out = append(out, b)
	}
	return out
}

func decodeAll(t testing.TB, msgs [][]byte) ([]Socket, diagStatus) {
	t.Helper()
	var out []Socket
	var st diagStatus
	for _, m := range msgs {
		var err error
		out, st, err = decodeDiag(m, 0, out)
		if err != nil {
			t.Fatalf("failed to decode: %v", err)
		}
	}
	return out, st
}

// TestDecodeRecordedDump checks the sock_diag replies recorded from a real
// kernel against the same namespace's /proc/net/tcp{,6}, recorded at the
// same moment: two independent views of the same sockets.
func TestDecodeRecordedDump(t *testing.T) {
	p, err := NewFS(nativeRoot(t, recordedRoot))
	if err != nil {
		t.Fatalf("failed to open recorded FS: %v", err)
	}
	for _, tt := range []struct {
		name, hex string
		family    uint8
	}{
		{"ipv4", "dump4.hex", afInet},
		{"ipv6", "dump6.hex", afInet6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, st := decodeAll(t, readNativeHexFixture(t, recordedRoot+"/"+tt.hex))
			if !st.done || st.intr {
				t.Fatalf("status = %+v, want done and not interrupted", st)
			}
			want, err := p.Dump(tt.family, AllStates)
			if err != nil {
				t.Fatalf("failed to read recorded /proc: %v", err)
			}
			if len(got) != len(want) {
				t.Fatalf("decoded %d sockets, /proc has %d", len(got), len(want))
			}
			pm := byTupleNeutral(want)
			for _, s := range got {
				w, ok := pm[[2]netip.AddrPort{s.Local, s.Remote}]
				if !ok {
					t.Errorf("decoded %+v not in /proc", s)
					continue
				}
				// /proc has no cookie, cgroup or listener backlog.
				g := s
				g.Cookie, g.CgroupID, g.IfIndex, g.V6Only = 0, 0, 0, false
				if g.State == Listen {
					if g.SendQ == 0 {
						t.Errorf("listener %v has no backlog", s.Local)
					}
					g.SendQ = 0
				}
				if g != w {
					t.Errorf("socket differs (-proc +sock_diag):\n-%+v\n+%+v", w, g)
				}
				if s.State != TimeWait && (s.Cookie == 0 || s.CgroupID == 0) {
					t.Errorf("socket %+v lacks cookie or cgroup id", s)
				}
			}
		})
	}
}

func byTupleNeutral(ss []Socket) map[[2]netip.AddrPort]Socket {
	m := make(map[[2]netip.AddrPort]Socket, len(ss))
	for _, s := range ss {
		m[[2]netip.AddrPort{s.Local, s.Remote}] = s
	}
	return m
}

func TestDecodeRecordedLookup(t *testing.T) {
	got, st := decodeAll(t, readNativeHexFixture(t, recordedRoot+"/lookup_found.hex"))
	if len(got) != 1 || got[0].State != Established || got[0].Inode == 0 {
		t.Fatalf("lookup reply decoded to %+v (%+v), want one ESTAB socket", got, st)
	}
	_, _, err := decodeDiag(readNativeHexFixture(t, recordedRoot+"/lookup_missing.hex")[0], 0, nil)
	if !errors.Is(err, syscall.ENOENT) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing lookup reply = %v, want ENOENT", err)
	}
}

// nlmsg builds one netlink message in native order.
func nlmsg(typ, flags uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, sizeofNlMsghdr, sizeofNlMsghdr+len(payload)+3)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(sizeofNlMsghdr+len(payload)))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], flags)
	ne.PutUint32(b[8:], seq)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// inetDiagMsg builds a struct inet_diag_msg plus attributes.
func inetDiagMsg(s Socket, attrs ...[]byte) []byte {
	b := make([]byte, sizeofInetDiagMsg)
	ne := binary.NativeEndian
	b[offMsgFamily] = afInet
	if s.Local.Addr().Is6() {
		b[offMsgFamily] = afInet6
	}
	b[offMsgState] = byte(s.State)
	id := b[offMsgID:]
	binary.BigEndian.PutUint16(id[offIDSport:], s.Local.Port())
	binary.BigEndian.PutUint16(id[offIDDport:], s.Remote.Port())
	putAddr(id[offIDSrc:], s.Local.Addr())
	putAddr(id[offIDDst:], s.Remote.Addr())
	ne.PutUint32(id[offIDIf:], s.IfIndex)
	ne.PutUint32(id[offIDCookie:], uint32(s.Cookie))
	ne.PutUint32(id[offIDCookie+4:], uint32(s.Cookie>>32))
	ne.PutUint32(b[offMsgRqueue:], s.RecvQ)
	ne.PutUint32(b[offMsgWqueue:], s.SendQ)
	ne.PutUint32(b[offMsgUID:], s.UID)
	ne.PutUint32(b[offMsgInode:], uint32(s.Inode))
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func rtattr(typ uint16, v []byte) []byte {
	b := make([]byte, 4, 4+len(v)+3)
	binary.NativeEndian.PutUint16(b[0:], uint16(4+len(v)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u64(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func TestDecodeDiag(t *testing.T) {
	v4 := Socket{Local: ap("10.0.0.1:443"), Remote: ap("192.0.2.7:51000"), State: Established, RecvQ: 1, SendQ: 2, UID: 1000, Inode: 4000000000, Cookie: 0x1_0000_0002, IfIndex: 3}
	v6 := Socket{Local: ap("[2001:db8::1]:8080"), Remote: ap("[::]:0"), State: Listen, RecvQ: 5, SendQ: 128, Inode: 7, Cookie: 9, CgroupID: 0x1234, V6Only: true}
	v6plain := v6 // without attributes
	v6plain.CgroupID, v6plain.V6Only = 0, false
	done := nlmsg(nlmsgDone, 2, 7, []byte{0, 0, 0, 0})
	errno := func(e int32) []byte {
		return nlmsg(nlmsgError, 0, 7, binary.NativeEndian.AppendUint32(nil, uint32(-e)))
	}
	tests := []struct {
		name    string
		in      []byte
		want    []Socket
		st      diagStatus
		wantErr error
	}{
		{name: "empty", in: nil},
		{name: "done_only", in: done, st: diagStatus{done: true}},
		{name: "two_and_done", in: cat(nlmsg(sockDiagByFamily, 2, 7, inetDiagMsg(v4)),
			nlmsg(sockDiagByFamily, 2, 7, inetDiagMsg(v6, rtattr(8, []byte{0}), rtattr(inetDiagSKV6Only, []byte{1}), rtattr(inetDiagCgroupID, u64(0x1234)), rtattr(999, []byte{1, 2, 3, 4, 5}))), done),
			want: []Socket{v4, v6}, st: diagStatus{done: true}},
		{name: "dump_intr", in: cat(nlmsg(sockDiagByFamily, 2|nlmFDumpIntr, 7, inetDiagMsg(v4)), done), want: []Socket{v4}, st: diagStatus{done: true, intr: true}},
		{name: "stale_seq_skipped", in: cat(nlmsg(sockDiagByFamily, 2, 6, inetDiagMsg(v4)), nlmsg(nlmsgDone, 2, 6, []byte{0, 0, 0, 0}), nlmsg(sockDiagByFamily, 2, 7, inetDiagMsg(v6))), want: []Socket{v6plain}},
		{name: "noop_and_unknown_type", in: cat(nlmsg(nlmsgNoop, 0, 7, nil), nlmsg(0x99, 0, 7, []byte{1}), nlmsg(sockDiagByFamily, 2, 7, inetDiagMsg(v4))), want: []Socket{v4}},
		{name: "ack", in: errno(0), st: diagStatus{done: true}},
		{name: "enoent", in: errno(2), st: diagStatus{done: true}, wantErr: syscall.ENOENT},
		{name: "done_with_error", in: nlmsg(nlmsgDone, 2, 7, binary.NativeEndian.AppendUint32(nil, uint32(0xffffffff-11))), st: diagStatus{done: true}, wantErr: syscall.Errno(12)},
		{name: "short_header", in: []byte{1, 2, 3}, wantErr: ErrParse},
		{name: "length_past_end", in: nlmsg(sockDiagByFamily, 2, 7, inetDiagMsg(v4))[:40], wantErr: ErrParse},
		{name: "length_below_header", in: func() []byte {
			b := nlmsg(nlmsgNoop, 0, 7, nil)
			b[0] = 8
			return b
		}(), wantErr: ErrParse},
		{name: "truncated_inet_diag_msg", in: nlmsg(sockDiagByFamily, 2, 7, inetDiagMsg(v4)[:sizeofInetDiagMsg-1]), wantErr: ErrParse},
		{name: "unknown_family", in: func() []byte {
			m := inetDiagMsg(v4)
			m[offMsgFamily] = 1
			return nlmsg(sockDiagByFamily, 2, 7, m)
		}(), wantErr: ErrParse},
		{name: "attr_too_long", in: nlmsg(sockDiagByFamily, 2, 7, cat(inetDiagMsg(v4), []byte{200, 0, 8, 0})), wantErr: ErrParse},
		{name: "attr_truncated_header", in: nlmsg(sockDiagByFamily, 2, 7, cat(inetDiagMsg(v4), []byte{4, 0})), wantErr: ErrParse},
		{name: "short_cgroup_attr_ignored", in: nlmsg(sockDiagByFamily, 2, 7, inetDiagMsg(v4, rtattr(inetDiagCgroupID, []byte{1, 2}))), want: []Socket{v4}},
		{name: "error_too_short", in: nlmsg(nlmsgError, 0, 7, []byte{1}), st: diagStatus{done: true}, wantErr: ErrParse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]byte(nil), tt.in...)
			got, st, err := decodeDiag(in, 7, nil)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("failed to decode: %v", err)
			}
			if st != tt.st {
				t.Fatalf("status = %+v, want %+v", st, tt.st)
			}
			if tt.wantErr == nil {
				if d := diffSockets(tt.want, got); d != "" {
					t.Fatalf("unexpected sockets (-want +got):\n%s", d)
				}
			}
		})
	}
}

func TestMarshalDiagRequest(t *testing.T) {
	ne := binary.NativeEndian
	// Expected bytes, field by field, as include/uapi/linux/inet_diag.h lays them out.
	hdr := func(flags uint16, seq uint32) []byte {
		b := ne.AppendUint32(nil, 72) // nlmsg_len: 16 + 56
		b = ne.AppendUint16(b, 20)    // SOCK_DIAG_BY_FAMILY
		b = ne.AppendUint16(b, flags)
		b = ne.AppendUint32(b, seq)
		return ne.AppendUint32(b, 0) // nlmsg_pid
	}
	t.Run("dump", func(t *testing.T) {
		want := hdr(0x301, 5)
		want = append(want, 10, 6, 0, 0) // AF_INET6, IPPROTO_TCP, idiag_ext, pad
		want = ne.AppendUint32(want, 1<<10)
		want = append(want, make([]byte, 48)...)
		r := diagRequest{seq: 5, dump: true, family: afInet6, states: Mask(Listen)}
		if got := r.marshal(nil); string(got) != string(want) {
			t.Fatalf("marshal:\n got %x\nwant %x", got, want)
		}
	})
	t.Run("lookup_ipv4", func(t *testing.T) {
		want := hdr(0x1, 9)
		want = append(want, 2, 6, 0, 0)
		want = ne.AppendUint32(want, uint32(AllStates))
		want = append(want, 0x1f, 0x90, 0xc3, 0x50)                           // sport 8080, dport 50000: network order
		want = append(want, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) // idiag_src
		want = append(want, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) // idiag_dst
		want = ne.AppendUint32(want, 0)                                       // idiag_if
		want = append(want, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)   // INET_DIAG_NOCOOKIE
		r := diagRequest{seq: 9, family: afInet, states: AllStates, local: ap("127.0.0.1:8080"), remote: ap("192.0.2.1:50000")}
		if got := r.marshal(nil); string(got) != string(want) {
			t.Fatalf("marshal:\n got %x\nwant %x", got, want)
		}
	})
	t.Run("roundtrip_ipv6_sockid", func(t *testing.T) {
		r := diagRequest{seq: 1, family: afInet6, local: ap("[2001:db8::1]:1"), remote: ap("[fe80::2]:65535")}
		b := r.marshal(nil)
		id := b[sizeofNlMsghdr+offReqID:]
		// The request's sockid has the inet_diag_msg layout: decode it back.
		m := make([]byte, sizeofInetDiagMsg)
		m[offMsgFamily] = afInet6
		copy(m[offMsgID:], id[:sizeofInetDiagSockID])
		s, err := decodeInetDiagMsg(m)
		if err != nil || s.Local != r.local || s.Remote != r.remote {
			t.Fatalf("roundtrip = %+v, %v", s, err)
		}
	})
}

func TestDecodeDiagNoAllocs(t *testing.T) {
	msg := cat(nlmsg(sockDiagByFamily, 2, 7, inetDiagMsg(Socket{Local: ap("[2001:db8::1]:1"), Remote: ap("[2001:db8::2]:2"), State: Established}, rtattr(inetDiagCgroupID, u64(5)))), nlmsg(nlmsgDone, 2, 7, []byte{0, 0, 0, 0}))
	dst := make([]Socket, 0, 4)
	if n := testing.AllocsPerRun(1000, func() { dst, _, _ = decodeDiag(msg, 7, dst[:0]) }); n != 0 {
		t.Fatalf("decodeDiag allocates %v times, want 0", n)
	}
}
