package sniff_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/rstwatch/rstwatch/sniff"
)

// tcpSpec describes a TCP segment for the packet builders below.
type tcpSpec struct {
	src, dst netip.AddrPort
	seq, ack uint32
	flags    sniff.TCPFlags
	window   uint16
	opts     int // bytes of TCP options (multiple of 4)
	payload  []byte
	ttl, tos uint8
	ipid     uint16
	df       bool
	flow     uint32
	ipOpts   int     // IPv4 option bytes (multiple of 4)
	ext      []uint8 // IPv6 extension headers before TCP, in order
}

// build returns the IP packet described by t.
func (t tcpSpec) build() []byte {
	tcp := make([]byte, 20+t.opts+len(t.payload))
	binary.BigEndian.PutUint16(tcp[0:], t.src.Port())
	binary.BigEndian.PutUint16(tcp[2:], t.dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], t.seq)
	binary.BigEndian.PutUint32(tcp[8:], t.ack)
	tcp[12] = byte((20+t.opts)/4) << 4
	tcp[13] = byte(t.flags)
	binary.BigEndian.PutUint16(tcp[14:], t.window)
	for i := 20; i < 20+t.opts; i++ {
		tcp[i] = 1 // NOP
	}
	copy(tcp[20+t.opts:], t.payload)

	if t.src.Addr().Is4() {
		ihl := 20 + t.ipOpts
		ip := make([]byte, ihl, ihl+len(tcp))
		ip[0] = 0x40 | byte(ihl/4)
		ip[1] = t.tos
		binary.BigEndian.PutUint16(ip[2:], uint16(ihl+len(tcp)))
		binary.BigEndian.PutUint16(ip[4:], t.ipid)
		if t.df {
			ip[6] = 0x40
		}
		ip[8] = t.ttl
		ip[9] = 6
		s, d := t.src.Addr().As4(), t.dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		for i := 20; i < ihl; i++ {
			ip[i] = 1 // NOP option
		}
		return append(ip, tcp...)
	}
	var ext []byte
	next := uint8(6)
	for i := len(t.ext) - 1; i >= 0; i-- {
		var h []byte
		switch t.ext[i] {
		case 44: // fragment, first fragment (offset 0, M set)
			h = []byte{next, 0, 0, 1, 0, 0, 0, 1}
		case 51: // AH with 12 bytes of ICV: (len+2)*4 = 24
			h = make([]byte, 24)
			h[0], h[1] = next, 4
		default: // hop-by-hop, routing, destination options: 16 bytes
			h = make([]byte, 16)
			h[0], h[1] = next, 1
		}
		ext = append(h, ext...)
		next = t.ext[i]
	}
	ip := make([]byte, 40, 40+len(ext)+len(tcp))
	binary.BigEndian.PutUint32(ip[0:], 6<<28|uint32(t.tos)<<20|t.flow&0xfffff)
	binary.BigEndian.PutUint16(ip[4:], uint16(len(ext)+len(tcp)))
	ip[6] = next
	ip[7] = t.ttl
	s, d := t.src.Addr().As16(), t.dst.Addr().As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	return append(append(ip, ext...), tcp...)
}

var (
	v4a = netip.MustParseAddrPort("127.0.0.1:7211")
	v4b = netip.MustParseAddrPort("127.0.0.1:41838")
	v6a = netip.MustParseAddrPort("[::1]:7211")
	v6b = netip.MustParseAddrPort("[::1]:41838")

	refusedV4 = tcpSpec{src: v4a, dst: v4b, seq: 0, ack: 2154306035, flags: sniff.FlagRST | sniff.FlagACK, ttl: 64, df: true}
	refusedV6 = tcpSpec{src: v6a, dst: v6b, seq: 0, ack: 99, flags: sniff.FlagRST | sniff.FlagACK, ttl: 64, tos: 0x10, flow: 0x12345}
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		spec tcpSpec
		// mangle changes the built packet; nil leaves it.
		mangle func([]byte) []byte
		want   sniff.Segment
		err    error
	}{
		{
			name: "ipv4_refused",
			spec: refusedV4,
			want: sniff.Segment{Family: sniff.IPv4, Src: v4a, Dst: v4b, Ack: 2154306035,
				Flags: sniff.FlagRST | sniff.FlagACK, TTL: 64, DF: true, TCPHeaderLen: 20, TCPOffset: 20, Payload: []byte{}},
		},
		{
			name: "ipv4_options_and_tcp_timestamps",
			spec: tcpSpec{src: v4a, dst: v4b, seq: 7, ack: 9, flags: sniff.FlagRST | sniff.FlagACK, window: 512, opts: 12, ipOpts: 8, ttl: 63, tos: 0x28, ipid: 4242},
			want: sniff.Segment{Family: sniff.IPv4, Src: v4a, Dst: v4b, Seq: 7, Ack: 9, Window: 512,
				Flags: sniff.FlagRST | sniff.FlagACK, TTL: 63, TOS: 0x28, IPID: 4242, TCPHeaderLen: 32, TCPOffset: 28, Payload: []byte{}},
		},
		{
			name: "ipv4_rst_with_payload",
			spec: tcpSpec{src: v4a, dst: v4b, seq: 1, flags: sniff.FlagRST, payload: []byte("[RST+ BIG-IP: no pool]")},
			want: sniff.Segment{Family: sniff.IPv4, Src: v4a, Dst: v4b, Seq: 1, Flags: sniff.FlagRST,
				TCPHeaderLen: 20, TCPOffset: 20, PayloadLen: 22, Payload: []byte("[RST+ BIG-IP: no pool]")},
		},
		{
			name:   "ipv4_ethernet_padding_is_not_payload",
			spec:   refusedV4,
			mangle: func(b []byte) []byte { return append(b, 0, 0, 0, 0, 0, 0) },
			want: sniff.Segment{Family: sniff.IPv4, Src: v4a, Dst: v4b, Ack: 2154306035,
				Flags: sniff.FlagRST | sniff.FlagACK, TTL: 64, DF: true, TCPHeaderLen: 20, TCPOffset: 20, Payload: []byte{}},
		},
		{
			name:   "ipv4_snaplen_cut_payload",
			spec:   tcpSpec{src: v4a, dst: v4b, flags: sniff.FlagRST, payload: []byte("0123456789")},
			mangle: func(b []byte) []byte { return b[:len(b)-4] },
			want: sniff.Segment{Family: sniff.IPv4, Src: v4a, Dst: v4b, Flags: sniff.FlagRST,
				TCPHeaderLen: 20, TCPOffset: 20, PayloadLen: 10, Payload: []byte("012345")},
		},
		{
			name: "ipv6_refused",
			spec: refusedV6,
			want: sniff.Segment{Family: sniff.IPv6, Src: v6a, Dst: v6b, Ack: 99, Flags: sniff.FlagRST | sniff.FlagACK,
				TTL: 64, TOS: 0x10, FlowLabel: 0x12345, TCPHeaderLen: 20, TCPOffset: 40, Payload: []byte{}},
		},
		{
			name: "ipv6_ext_header_chain",
			spec: func() tcpSpec { s := refusedV6; s.ext = []uint8{0, 43, 60, 44, 51}; return s }(),
			want: sniff.Segment{Family: sniff.IPv6, Src: v6a, Dst: v6b, Ack: 99, Flags: sniff.FlagRST | sniff.FlagACK,
				TTL: 64, TOS: 0x10, FlowLabel: 0x12345, TCPHeaderLen: 20, TCPOffset: 40 + 16*3 + 8 + 24, Payload: []byte{}},
		},
		{name: "empty", mangle: func([]byte) []byte { return nil }, err: sniff.ErrTruncated},
		{name: "not_ip", spec: refusedV4, mangle: func(b []byte) []byte { b[0] = 0x55; return b }, err: sniff.ErrNotIP},
		{name: "ipv4_truncated_header", spec: refusedV4, mangle: func(b []byte) []byte { return b[:19] }, err: sniff.ErrTruncated},
		{name: "ipv4_ihl_trap", spec: refusedV4, mangle: func(b []byte) []byte { b[0] = 0x43; return b }, err: sniff.ErrMalformed},
		{name: "ipv4_ihl_past_end", spec: refusedV4, mangle: func(b []byte) []byte { b[0], b[3] = 0x4f, 80; return b[:40] }, err: sniff.ErrTruncated},
		{name: "ipv4_total_length_inside_tcp", spec: refusedV4, mangle: func(b []byte) []byte { b[3] = 30; return b }, err: sniff.ErrMalformed},
		{name: "ipv4_udp", spec: refusedV4, mangle: func(b []byte) []byte { b[9] = 17; return b }, err: sniff.ErrNotTCP},
		{name: "ipv4_nonfirst_fragment", spec: refusedV4, mangle: func(b []byte) []byte { b[7] = 8; return b }, err: sniff.ErrFragment},
		{name: "tcp_doff_lt_5", spec: refusedV4, mangle: func(b []byte) []byte { b[20+12] = 4 << 4; return b }, err: sniff.ErrMalformed},
		{name: "tcp_truncated_by_1", spec: refusedV4, mangle: func(b []byte) []byte { return b[:len(b)-1] }, err: sniff.ErrTruncated},
		{name: "tcp_options_truncated", spec: tcpSpec{src: v4a, dst: v4b, flags: sniff.FlagRST, opts: 12}, mangle: func(b []byte) []byte { return b[:45] }, err: sniff.ErrTruncated},
		{name: "ipv6_truncated", spec: refusedV6, mangle: func(b []byte) []byte { return b[:39] }, err: sniff.ErrTruncated},
		{name: "ipv6_esp", spec: refusedV6, mangle: func(b []byte) []byte { b[6] = 50; return b }, err: sniff.ErrNotTCP},
		{
			name: "ipv6_nonfirst_fragment", spec: func() tcpSpec { s := refusedV6; s.ext = []uint8{44}; return s }(),
			mangle: func(b []byte) []byte { b[40+3] = 0x09; return b }, err: sniff.ErrFragment,
		},
		{
			name: "ipv6_ext_header_past_end", spec: func() tcpSpec { s := refusedV6; s.ext = []uint8{0}; return s }(),
			mangle: func(b []byte) []byte { b[41] = 200; return b }, err: sniff.ErrTruncated,
		},
		{
			name: "ipv6_chain_too_deep", spec: func() tcpSpec { s := refusedV6; s.ext = []uint8{0, 60, 60, 60, 60, 60, 60, 60, 60}; return s }(),
			err: sniff.ErrNotTCP,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.spec.build()
			if tt.mangle != nil {
				b = tt.mangle(b)
			}
			var got sniff.Segment
			err := got.Decode(b)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Decode error = %v, want %v", err, tt.err)
			}
			if tt.err != nil {
				return
			}
			if !reflect.DeepEqual(tt.want, got) {
				t.Fatalf("unexpected segment (-want +got):\n- %+v\n+ %+v", tt.want, got)
			}
		})
	}
}

func TestFlagsString(t *testing.T) {
	for _, tt := range []struct {
		f    sniff.TCPFlags
		want string
	}{
		{sniff.FlagRST, "R"},
		{sniff.FlagRST | sniff.FlagACK, "R."},
		{sniff.FlagFIN | sniff.FlagRST | sniff.FlagACK, "FR."},
		{sniff.FlagSYN, "S"},
		{0xff, "FSRP.UEW"},
		{0, "none"},
	} {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("TCPFlags(%#x).String() = %q, want %q", uint8(tt.f), got, tt.want)
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	for _, spec := range []tcpSpec{refusedV4, refusedV6, func() tcpSpec { s := refusedV6; s.ext = []uint8{0, 44}; return s }()} {
		b := spec.build()
		var s sniff.Segment
		if n := testing.AllocsPerRun(1000, func() { _ = s.Decode(b) }); n != 0 {
			t.Fatalf("Decode allocates %v times per packet, want 0", n)
		}
	}
	var s sniff.Segment
	bad := []byte{0x45}
	if n := testing.AllocsPerRun(1000, func() { _ = s.Decode(bad) }); n != 0 {
		t.Fatalf("Decode of a bad packet allocates %v times, want 0", n)
	}
}

var sinkSegment sniff.Segment

func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name string
		spec tcpSpec
	}{
		{"ipv4", refusedV4},
		{"ipv6", refusedV6},
		{"ipv6_ext_chain", func() tcpSpec { s := refusedV6; s.ext = []uint8{0, 43, 44}; return s }()},
	} {
		pkt := bc.spec.build()
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			for b.Loop() {
				if err := sinkSegment.Decode(pkt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzDecode checks that Decode never panics and that whatever it returns
// stays inside the input.
func FuzzDecode(f *testing.F) {
	for _, spec := range []tcpSpec{refusedV4, refusedV6,
		func() tcpSpec { s := refusedV6; s.ext = []uint8{0, 43, 60, 44, 51}; return s }(),
		{src: v4a, dst: v4b, flags: sniff.FlagRST, payload: []byte("reason"), opts: 12, ipOpts: 4},
	} {
		f.Add(spec.build())
	}
	for _, e := range icmpCases {
		f.Add(e.pkt)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s sniff.Segment
		if err := s.Decode(b); err != nil {
			return
		}
		if s.ICMP.Valid() {
			// A quoted segment: at least its first 8 bytes are there.
			if s.TCPOffset+8 > len(b) || s.TCPHeaderLen != 0 || s.PayloadLen != 0 || s.Payload != nil {
				t.Fatalf("quoted TCP header at %d of %d bytes, header %d, payload %d", s.TCPOffset, len(b), s.TCPHeaderLen, s.PayloadLen)
			}
			if s.ICMP.From.Is4() != (s.Family == sniff.IPv4) || s.Src.Addr().Is4() != (s.Family == sniff.IPv4) {
				t.Fatalf("ICMP from %v about %v for family %v", s.ICMP.From, s.Src, s.Family)
			}
			return
		}
		if s.TCPOffset+s.TCPHeaderLen > len(b) || s.TCPHeaderLen < 20 || s.TCPHeaderLen > 60 {
			t.Fatalf("TCP header [%d:+%d] outside %d bytes", s.TCPOffset, s.TCPHeaderLen, len(b))
		}
		if len(s.Payload) > s.PayloadLen || s.PayloadLen < 0 {
			t.Fatalf("payload %d bytes captured of %d announced", len(s.Payload), s.PayloadLen)
		}
		if s.Family != sniff.IPv4 && s.Family != sniff.IPv6 {
			t.Fatalf("family %v", s.Family)
		}
		if s.Src.Addr().Is4() != (s.Family == sniff.IPv4) {
			t.Fatalf("address %v for family %v", s.Src, s.Family)
		}
	})
}
