package sniff_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/rstwatch/rstwatch/sniff"
)

// icmpError wraps the quoted packet q in an ICMP (IPv4 from) or ICMPv6
// error of type and code from from to to.
func icmpError(from, to netip.Addr, typ, code byte, q []byte) []byte {
	body := append([]byte{typ, code, 0, 0, 0, 0, 0, 0}, q...)
	if from.Is4() {
		ip := make([]byte, 20, 20+len(body))
		ip[0], ip[8], ip[9] = 0x45, 63, 1
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(body)))
		f, t := from.As4(), to.As4()
		copy(ip[12:], f[:])
		copy(ip[16:], t[:])
		return append(ip, body...)
	}
	ip := make([]byte, 40, 40+len(body))
	ip[0], ip[6], ip[7] = 0x60, 58, 63
	binary.BigEndian.PutUint16(ip[4:], uint16(len(body)))
	f, t := from.As16(), to.As16()
	copy(ip[8:], f[:])
	copy(ip[24:], t[:])
	return append(ip, body...)
}

var (
	client4, server4 = netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:8080")
	client6, server6 = netip.MustParseAddrPort("[fd00::1]:40000"), netip.MustParseAddrPort("[fd00::2]:8080")
	router4, router6 = netip.MustParseAddr("10.0.9.1"), netip.MustParseAddr("fd00:9::1")
	syn4             = tcpSpec{src: client4, dst: server4, seq: 12345, flags: sniff.FlagSYN, window: 64240, ttl: 64}.build()
	syn6             = tcpSpec{src: client6, dst: server6, seq: 12345, flags: sniff.FlagSYN, window: 64240, ttl: 64}.build()
)

var icmpCases = []struct {
	name  string
	pkt   []byte
	from  netip.Addr
	words string
	kind  sniff.ErrorKind
	flags sniff.TCPFlags
}{
	{"port_unreachable", icmpError(server4.Addr(), client4.Addr(), 3, 3, syn4), server4.Addr(), "port unreachable", sniff.ErrorPort, sniff.FlagSYN},
	{"admin_prohibited", icmpError(server4.Addr(), client4.Addr(), 3, 13, syn4), server4.Addr(), "administratively prohibited", sniff.ErrorProhibited, sniff.FlagSYN},
	{"host_unreachable_8_bytes", icmpError(router4, client4.Addr(), 3, 1, syn4[:28]), router4, "host unreachable", sniff.ErrorNoRoute, 0},
	{"time_exceeded", icmpError(router4, client4.Addr(), 11, 0, syn4), router4, "time exceeded in transit", sniff.ErrorNoRoute, sniff.FlagSYN},
	{"frag_needed", icmpError(router4, client4.Addr(), 3, 4, syn4), router4, "fragmentation needed", sniff.ErrorOther, sniff.FlagSYN},
	{"v6_port_unreachable", icmpError(server6.Addr(), client6.Addr(), 1, 4, syn6), server6.Addr(), "port unreachable", sniff.ErrorPort, sniff.FlagSYN},
	{"v6_admin_prohibited", icmpError(server6.Addr(), client6.Addr(), 1, 1, syn6), server6.Addr(), "administratively prohibited", sniff.ErrorProhibited, sniff.FlagSYN},
	{"v6_no_route", icmpError(router6, client6.Addr(), 1, 0, syn6[:48]), router6, "no route to destination", sniff.ErrorNoRoute, 0},
	{"v6_address_unreachable", icmpError(router6, client6.Addr(), 1, 3, syn6), router6, "address unreachable", sniff.ErrorNoRoute, sniff.FlagSYN},
	{"v6_reject_route", icmpError(router6, client6.Addr(), 1, 6, syn6), router6, "reject route to destination", sniff.ErrorNoRoute, sniff.FlagSYN},
}

// TestDecodeICMP decodes ICMP and ICMPv6 errors: the quoted connection
// (client to server), who sent the error, and its meaning in words.
func TestDecodeICMP(t *testing.T) {
	for _, tt := range icmpCases {
		t.Run(tt.name, func(t *testing.T) {
			var s sniff.Segment
			if err := s.Decode(tt.pkt); err != nil {
				t.Fatal(err)
			}
			client, server := client4, server4
			if tt.from.Is6() {
				client, server = client6, server6
			}
			if !s.ICMP.Valid() || s.ICMP.From != tt.from || s.ICMP.To != client.Addr() {
				t.Fatalf("ICMP %+v, want from %v to %v", s.ICMP, tt.from, client.Addr())
			}
			if s.Src != client || s.Dst != server || s.Seq != 12345 || s.Flags != tt.flags {
				t.Errorf("quoted %v > %v seq %d flags %v, want %v > %v seq 12345 flags %v", s.Src, s.Dst, s.Seq, s.Flags, client, server, tt.flags)
			}
			if s.TTL != 63 {
				t.Errorf("TTL %d, want the error's own 63", s.TTL)
			}
			if got := s.ICMP.String(); got != tt.words {
				t.Errorf("words %q, want %q", got, tt.words)
			}
			if got := s.ICMP.Kind(); got != tt.kind {
				t.Errorf("kind %v, want %v", got, tt.kind)
			}
			// The next TCP segment decoded into s is not an error.
			if err := s.Decode(syn4); err != nil || s.ICMP.Valid() {
				t.Fatalf("after a TCP segment: ICMP %+v, err %v", s.ICMP, err)
			}
		})
	}
}

func TestDecodeICMPRejects(t *testing.T) {
	for _, tt := range []struct {
		name string
		pkt  []byte
	}{
		{"echo_reply", icmpError(server4.Addr(), client4.Addr(), 0, 0, syn4)},
		{"quoted_7_bytes", icmpError(router4, client4.Addr(), 3, 1, syn4[:27])},
		{"quoted_udp", icmpError(router4, client4.Addr(), 3, 3, func() []byte { b := append([]byte(nil), syn4...); b[9] = 17; return b }())},
		{"v6_packet_too_big", icmpError(router6, client6.Addr(), 2, 0, syn6)},
		{"v6_quoting_ipv4", icmpError(router6, client6.Addr(), 1, 0, syn4)},
		{"header_only", icmpError(router4, client4.Addr(), 3, 1, nil)[:24]},
	} {
		var s sniff.Segment
		if err := s.Decode(tt.pkt); err == nil {
			t.Errorf("%s: decoded as %+v", tt.name, s)
		}
	}
}

func TestDecodeICMPAllocs(t *testing.T) {
	var s sniff.Segment
	for _, tt := range icmpCases {
		if n := testing.AllocsPerRun(1000, func() { _ = s.Decode(tt.pkt) }); n != 0 {
			t.Fatalf("%s: Decode allocates %v times, want 0", tt.name, n)
		}
	}
}
