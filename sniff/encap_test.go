package sniff_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rstwatch/rstwatch/sniff"
)

// Builders of the layers that Encap.Peel removes. Each returns its header
// followed by the payload; the field values are written where the
// specifications put them, independently of the decoder's code.

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func join(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

var (
	macA = []byte{0x02, 0, 0, 0, 0, 0x0a}
	macB = []byte{0x02, 0, 0, 0, 0, 0x0b}
)

// eth is an Ethernet frame; tags are VLAN tags (TPID, VLAN ID) outermost
// first.
func eth(et uint16, payload []byte, tags ...[2]uint16) []byte {
	b := join(macA, macB)
	for _, t := range tags {
		b = join(b, be16(t[0]), be16(t[1]))
	}
	return join(b, be16(et), payload)
}

// mplsStack is a label stack; the last label has the bottom-of-stack bit.
func mplsStack(payload []byte, labels ...uint32) []byte {
	var b []byte
	for i, l := range labels {
		e := l<<12 | 64 // TTL 64
		if i == len(labels)-1 {
			e |= 0x100
		}
		b = join(b, be32(e))
	}
	return join(b, payload)
}

// pppoe is a PPPoE session header and PPP protocol field (RFC 2516).
func pppoe(session, pppProto uint16, payload []byte) []byte {
	return join([]byte{0x11, 0}, be16(session), be16(uint16(2+len(payload))), be16(pppProto), payload)
}

// outer4 is an IPv4 header with protocol proto around payload.
func outer4(proto uint8, src, dst string, payload []byte) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	h[6] = 0x40
	h[8] = 64
	h[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return join(h, payload)
}

// outer6 is an IPv6 header with next header next around payload, behind a
// destination options header when ext is set.
func outer6(next uint8, src, dst string, payload []byte, ext bool) []byte {
	if ext {
		payload = join([]byte{next, 0, 0, 0, 0, 0, 0, 0}, payload)
		next = 60
	}
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = next
	h[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return join(h, payload)
}

func udp(sport, dport uint16, payload []byte) []byte {
	return join(be16(sport), be16(dport), be16(uint16(8+len(payload))), be16(0), payload)
}

// vxlan is a VXLAN header (RFC 7348) around an Ethernet frame.
func vxlan(vni uint32, frame []byte) []byte {
	return join([]byte{0x08, 0, 0, 0}, be32(vni<<8), frame)
}

// geneve is a Geneve header (RFC 8926) with optWords 4-byte words of
// options.
func geneve(vni uint32, proto uint16, optWords int, payload []byte) []byte {
	h := join([]byte{byte(optWords), 0}, be16(proto), be32(vni<<8))
	for i := range optWords {
		h = append(h, byte(i), 1, 2, 3)
	}
	return join(h, payload)
}

// gtpu is a GTP-U G-PDU (TS 29.281); exts are the extension headers'
// contents (each padded to 4n-2 bytes by the caller).
func gtpu(teid uint32, payload []byte, exts ...[]byte) []byte {
	flags := byte(0x30)
	var opt []byte
	if len(exts) > 0 {
		flags |= 0x04
		opt = []byte{0, 0, 0, 0x85} // sequence number, N-PDU number, next type (PDU session container)
		for i, e := range exts {
			next := byte(0x85)
			if i == len(exts)-1 {
				next = 0
			}
			opt = join(opt, []byte{byte((len(e) + 2) / 4)}, e, []byte{next})
		}
	}
	return join([]byte{flags, 0xff}, be16(uint16(len(opt)+len(payload))), be32(teid), opt, payload)
}

// gre is a GRE header (RFC 2784, RFC 2890) with the optional fields whose
// flags are set.
func gre(flags byte, key, seq uint32, proto uint16, payload []byte) []byte {
	b := join([]byte{flags, 0}, be16(proto))
	if flags&0x80 != 0 {
		b = join(b, []byte{0xbe, 0xef, 0, 0})
	}
	if flags&0x20 != 0 {
		b = join(b, be32(key))
	}
	if flags&0x10 != 0 {
		b = join(b, be32(seq))
	}
	return join(b, payload)
}

// erspan2 is an ERSPAN type II header (draft-foschiano-erspan 4.1).
func erspan2(session uint16, frame []byte) []byte {
	return join(be16(0x1000|7), be16(session&0x3ff), be32(0), frame)
}

// erspan3 is an ERSPAN type III header (4.2), with the platform-specific
// subheader when sub is set.
func erspan3(session uint16, sub bool, frame []byte) []byte {
	b := join(be16(0x2000|7), be16(session&0x3ff), be32(12345), []byte{0, 0, 0, 0})
	if sub {
		b[11] |= 0x01
		b = join(b, make([]byte, 8))
	}
	return join(b, frame)
}

var (
	innerV4 = tcpSpec{src: netip.MustParseAddrPort("192.168.1.1:80"), dst: netip.MustParseAddrPort("192.168.1.2:40000"),
		ack: 1234, flags: sniff.FlagRST | sniff.FlagACK, ttl: 64, df: true}
	innerV6 = tcpSpec{src: netip.MustParseAddrPort("[fd00::1]:443"), dst: netip.MustParseAddrPort("[fd00::2]:50000"),
		seq: 77, flags: sniff.FlagRST, ttl: 64}
)

type encapCase struct {
	name  string
	proto uint16
	pkt   []byte
	inner tcpSpec
	json  string // the encap JSON value
	text  string
}

func encapCases() []encapCase {
	v4, v6 := innerV4.build(), innerV6.build()
	eth4, eth6 := eth(0x0800, v4), eth(0x86dd, v6)
	return []encapCase{
		{"ipv4", sniff.EtherTypeIPv4, v4, innerV4, `null`, ``},
		{"ipv6", sniff.EtherTypeIPv6, v6, innerV6, `null`, ``},
		{"ip_by_nibble", sniff.ProtoIP, v6, innerV6, `null`, ``},
		{"ethernet", sniff.ProtoEthernet, eth4, innerV4, `null`, ``},
		{"llc_snap", sniff.ProtoEthernet, eth(uint16(8+len(v4)), join([]byte{0xaa, 0xaa, 3, 0, 0, 0, 8, 0}, v4)), innerV4, `null`, ``},
		{"llc", sniff.ProtoLLC, join([]byte{0xaa, 0xaa, 3, 0, 0, 0, 0x86, 0xdd}, v6), innerV6, `null`, ``},
		{"vlan", sniff.ProtoEthernet, eth(0x0800, v4, [2]uint16{0x8100, 10}), innerV4,
			`[{"type":"vlan","id":10}]`, `vlan:10`},
		{"qinq", sniff.ProtoEthernet, eth(0x86dd, v6, [2]uint16{0x88a8, 100}, [2]uint16{0x8100, 0x2000 | 20}), innerV6,
			`[{"type":"qinq","id":100},{"type":"vlan","id":20}]`, `qinq:100/vlan:20`},
		{"qinq_9100", sniff.ProtoEthernet, eth(0x0800, v4, [2]uint16{0x9100, 5}, [2]uint16{0x8100, 6}), innerV4,
			`[{"type":"qinq","id":5},{"type":"vlan","id":6}]`, `qinq:5/vlan:6`},
		{"mpls_ipv4", sniff.ProtoEthernet, eth(0x8847, mplsStack(v4, 16, 1000)), innerV4,
			`[{"type":"mpls","label":16},{"type":"mpls","label":1000}]`, `mpls:16/mpls:1000`},
		{"mpls_ipv6", sniff.ProtoEthernet, eth(0x8847, mplsStack(v6, 2)), innerV6,
			`[{"type":"mpls","label":2}]`, `mpls:2`},
		{"mpls_pseudowire", sniff.ProtoEthernet, eth(0x8847, mplsStack(join([]byte{0, 0, 0, 1}, eth4), 300)), innerV4,
			`[{"type":"mpls","label":300}]`, `mpls:300`},
		{"mpls_pseudowire_no_cw", sniff.ProtoEthernet, eth(0x8847, mplsStack(eth(0x0800, v4, [2]uint16{0x8100, 4}), 301)), innerV4,
			`[{"type":"mpls","label":301},{"type":"vlan","id":4}]`, `mpls:301/vlan:4`},
		{"pppoe_ipv4", sniff.ProtoEthernet, eth(0x8864, pppoe(0x1234, 0x0021, v4)), innerV4,
			`[{"type":"pppoe","session":4660}]`, `pppoe:4660`},
		{"pppoe_ipv6_vlan", sniff.ProtoEthernet, eth(0x8864, pppoe(7, 0x0057, v6), [2]uint16{0x8100, 3}), innerV6,
			`[{"type":"vlan","id":3},{"type":"pppoe","session":7}]`, `vlan:3/pppoe:7`},
		{"ipip", sniff.EtherTypeIPv4, outer4(4, "10.0.0.1", "10.0.0.2", v4), innerV4,
			`[{"type":"ipip","src":"10.0.0.1","dst":"10.0.0.2"}]`, `ipip[10.0.0.1>10.0.0.2]`},
		{"sit", sniff.EtherTypeIPv4, outer4(41, "10.0.0.1", "10.0.0.2", v6), innerV6,
			`[{"type":"sit","src":"10.0.0.1","dst":"10.0.0.2"}]`, `sit[10.0.0.1>10.0.0.2]`},
		{"ipip6", sniff.EtherTypeIPv6, outer6(4, "2001:db8::1", "2001:db8::2", v4, false), innerV4,
			`[{"type":"ipip6","src":"2001:db8::1","dst":"2001:db8::2"}]`, `ipip6[2001:db8::1>2001:db8::2]`},
		{"ip6ip6_ext", sniff.EtherTypeIPv6, outer6(41, "2001:db8::1", "2001:db8::2", v6, true), innerV6,
			`[{"type":"ip6ip6","src":"2001:db8::1","dst":"2001:db8::2"}]`, `ip6ip6[2001:db8::1>2001:db8::2]`},
		{"gre_ipv4", sniff.EtherTypeIPv4, outer4(47, "10.0.0.1", "10.0.0.2", gre(0, 0, 0, 0x0800, v4)), innerV4,
			`[{"type":"gre","src":"10.0.0.1","dst":"10.0.0.2"}]`, `gre[10.0.0.1>10.0.0.2]`},
		{"gre_key_seq_csum", sniff.EtherTypeIPv4, outer4(47, "10.0.0.1", "10.0.0.2", gre(0xb0, 99, 5, 0x86dd, v6)), innerV6,
			`[{"type":"gre","key":99,"src":"10.0.0.1","dst":"10.0.0.2"}]`, `gre:99[10.0.0.1>10.0.0.2]`},
		{"gretap_over_ipv6", sniff.EtherTypeIPv6, outer6(47, "2001:db8::1", "2001:db8::2", gre(0x20, 7, 0, 0x6558, eth4), false), innerV4,
			`[{"type":"gre","key":7,"src":"2001:db8::1","dst":"2001:db8::2"}]`, `gre:7[2001:db8::1>2001:db8::2]`},
		{"erspan1", sniff.EtherTypeIPv4, outer4(47, "10.0.0.1", "10.0.0.2", gre(0, 0, 0, 0x88be, eth6)), innerV6,
			`[{"type":"gre","src":"10.0.0.1","dst":"10.0.0.2"},{"type":"erspan","version":1}]`, `gre[10.0.0.1>10.0.0.2]/erspan1`},
		{"erspan2", sniff.EtherTypeIPv4, outer4(47, "10.0.0.1", "10.0.0.2", gre(0x10, 0, 1, 0x88be, erspan2(100, eth4))), innerV4,
			`[{"type":"gre","src":"10.0.0.1","dst":"10.0.0.2"},{"type":"erspan","version":2,"session":100}]`, `gre[10.0.0.1>10.0.0.2]/erspan2:100`},
		{"erspan3_subheader", sniff.EtherTypeIPv4, outer4(47, "10.0.0.1", "10.0.0.2", gre(0x10, 0, 1, 0x22eb, erspan3(1023, true, eth(0x0800, v4, [2]uint16{0x8100, 9})))), innerV4,
			`[{"type":"gre","src":"10.0.0.1","dst":"10.0.0.2"},{"type":"erspan","version":3,"session":1023},{"type":"vlan","id":9}]`, `gre[10.0.0.1>10.0.0.2]/erspan3:1023/vlan:9`},
		{"vxlan", sniff.EtherTypeIPv4, outer4(17, "10.0.0.1", "10.0.0.2", udp(51000, 4789, vxlan(42, eth4))), innerV4,
			`[{"type":"vxlan","vni":42,"src":"10.0.0.1","dst":"10.0.0.2"}]`, `vxlan:42[10.0.0.1>10.0.0.2]`},
		{"vlan_vxlan", sniff.ProtoEthernet, eth(0x0800, outer4(17, "10.0.0.1", "10.0.0.2", udp(51000, 4789, vxlan(42, eth4))), [2]uint16{0x8100, 10}), innerV4,
			`[{"type":"vlan","id":10},{"type":"vxlan","vni":42,"src":"10.0.0.1","dst":"10.0.0.2"}]`, `vlan:10/vxlan:42[10.0.0.1>10.0.0.2]`},
		{"vxlan_linux_port_ipv6", sniff.EtherTypeIPv6, outer6(17, "2001:db8::1", "2001:db8::2", udp(8472, 40000, vxlan(0xffffff, eth6)), false), innerV6,
			`[{"type":"vxlan","vni":16777215,"src":"2001:db8::1","dst":"2001:db8::2"}]`, `vxlan:16777215[2001:db8::1>2001:db8::2]`},
		{"geneve_options", sniff.EtherTypeIPv4, outer4(17, "10.0.0.1", "10.0.0.2", udp(40000, 6081, geneve(5, 0x6558, 3, eth4))), innerV4,
			`[{"type":"geneve","vni":5,"src":"10.0.0.1","dst":"10.0.0.2"}]`, `geneve:5[10.0.0.1>10.0.0.2]`},
		{"geneve_ipv6_payload", sniff.EtherTypeIPv4, outer4(17, "10.0.0.1", "10.0.0.2", udp(40000, 6081, geneve(6, 0x86dd, 0, v6))), innerV6,
			`[{"type":"geneve","vni":6,"src":"10.0.0.1","dst":"10.0.0.2"}]`, `geneve:6[10.0.0.1>10.0.0.2]`},
		{"gtpu", sniff.EtherTypeIPv4, outer4(17, "10.0.0.1", "10.0.0.2", udp(2152, 2152, gtpu(0xdeadbeef, v4))), innerV4,
			`[{"type":"gtpu","teid":3735928559,"src":"10.0.0.1","dst":"10.0.0.2"}]`, `gtpu:3735928559[10.0.0.1>10.0.0.2]`},
		{"gtpu_extensions", sniff.EtherTypeIPv4, outer4(17, "10.0.0.1", "10.0.0.2", udp(2152, 2152, gtpu(1, v6, []byte{0, 1}, []byte{1, 2, 3, 4, 5, 6}))), innerV6,
			`[{"type":"gtpu","teid":1,"src":"10.0.0.1","dst":"10.0.0.2"}]`, `gtpu:1[10.0.0.1>10.0.0.2]`},
		{"gre_in_vxlan_in_qinq", sniff.ProtoEthernet, eth(0x0800,
			outer4(17, "10.0.0.1", "10.0.0.2", udp(1, 4789, vxlan(9, eth(0x0800,
				outer4(47, "172.16.0.1", "172.16.0.2", gre(0x20, 3, 0, 0x0800, v4)))))),
			[2]uint16{0x88a8, 1}, [2]uint16{0x8100, 2}), innerV4,
			`[{"type":"qinq","id":1},{"type":"vlan","id":2},{"type":"vxlan","vni":9,"src":"10.0.0.1","dst":"10.0.0.2"},{"type":"gre","key":3,"src":"172.16.0.1","dst":"172.16.0.2"}]`,
			`qinq:1/vlan:2/vxlan:9[10.0.0.1>10.0.0.2]/gre:3[172.16.0.1>172.16.0.2]`},
		{"ipip_in_geneve_in_mpls", sniff.ProtoEthernet, eth(0x8847, mplsStack(
			outer6(17, "2001:db8::1", "2001:db8::2", udp(1, 6081, geneve(8, 0x0800, 1, outer4(4, "10.1.1.1", "10.2.2.2", v4))), false), 17)), innerV4,
			`[{"type":"mpls","label":17},{"type":"geneve","vni":8,"src":"2001:db8::1","dst":"2001:db8::2"},{"type":"ipip","src":"10.1.1.1","dst":"10.2.2.2"}]`,
			`mpls:17/geneve:8[2001:db8::1>2001:db8::2]/ipip[10.1.1.1>10.2.2.2]`},
	}
}

func TestPeel(t *testing.T) {
	for _, tc := range encapCases() {
		t.Run(tc.name, func(t *testing.T) {
			var (
				s   sniff.Segment
				enc sniff.Encap
			)
			ip, err := s.DecodeLayers(tc.pkt, tc.proto, &enc)
			if err != nil {
				t.Fatalf("DecodeLayers: %v", err)
			}
			if s.Src != tc.inner.src || s.Dst != tc.inner.dst || s.Seq != tc.inner.seq || s.Ack != tc.inner.ack || s.Flags != tc.inner.flags {
				t.Errorf("got %v > %v seq %d ack %d flags %v, want the inner %v > %v seq %d ack %d flags %v",
					s.Src, s.Dst, s.Seq, s.Ack, s.Flags, tc.inner.src, tc.inner.dst, tc.inner.seq, tc.inner.ack, tc.inner.flags)
			}
			if &ip[len(ip)-1] != &tc.pkt[len(tc.pkt)-1] {
				t.Error("the inner packet does not end where the frame ends")
			}
			if got := string(enc.AppendJSON(nil)); got != tc.json {
				t.Errorf("AppendJSON:\n got %s\nwant %s", got, tc.json)
			}
			if !json.Valid(enc.AppendJSON(nil)) {
				t.Errorf("AppendJSON is not valid JSON")
			}
			if got := string(enc.AppendText(nil)); got != tc.text {
				t.Errorf("AppendText: got %q, want %q", got, tc.text)
			}
		})
	}
}

// TestPeelRejects checks broken and foreign layers.
func TestPeelRejects(t *testing.T) {
	v4 := innerV4.build()
	eth4 := eth(0x0800, v4)
	deep := v4
	for range sniff.MaxEncap + 1 {
		deep = outer4(4, "10.0.0.1", "10.0.0.2", deep)
	}
	for _, tc := range []struct {
		name  string
		proto uint16
		pkt   []byte
		want  error
	}{
		{"arp", sniff.ProtoEthernet, eth(0x0806, make([]byte, 28)), sniff.ErrNotIP},
		{"ethertype_version_mismatch", sniff.EtherTypeIPv6, v4, sniff.ErrNotIP},
		{"truncated_vlan", sniff.ProtoEthernet, eth(0x8100, []byte{0, 1}), sniff.ErrTruncated},
		{"llc_not_snap", sniff.ProtoLLC, join([]byte{0x42, 0x42, 3, 0, 0, 0, 8, 0}, v4), sniff.ErrNotIP},
		{"pppoe_discovery_code", sniff.ProtoEthernet, eth(0x8864, append([]byte{0x11, 0x09}, pppoe(1, 0x21, v4)[2:]...)), sniff.ErrMalformed},
		{"pppoe_lcp", sniff.ProtoEthernet, eth(0x8864, pppoe(1, 0xc021, v4)), sniff.ErrNotIP},
		{"mpls_unknown_payload", sniff.ProtoEthernet, eth(0x8847, mplsStack([]byte{0x90, 0, 0, 0}, 5)), sniff.ErrNotIP},
		{"mpls_no_bottom", sniff.ProtoEthernet, eth(0x8847, be32(5<<12)), sniff.ErrTruncated},
		{"udp_other_port", sniff.EtherTypeIPv4, outer4(17, "10.0.0.1", "10.0.0.2", udp(53, 53, eth4)), sniff.ErrNotTCP},
		{"vxlan_without_I_flag", sniff.EtherTypeIPv4, outer4(17, "10.0.0.1", "10.0.0.2", udp(1, 4789, join([]byte{0, 0, 0, 0, 0, 0, 42, 0}, eth4))), sniff.ErrMalformed},
		{"vxlan_truncated", sniff.EtherTypeIPv4, outer4(17, "10.0.0.1", "10.0.0.2", udp(1, 4789, []byte{8, 0, 0})), sniff.ErrTruncated},
		{"geneve_options_truncated", sniff.EtherTypeIPv4, outer4(17, "10.0.0.1", "10.0.0.2", udp(1, 6081, geneve(1, 0x6558, 4, nil)[:20])), sniff.ErrTruncated},
		{"geneve_version_1", sniff.EtherTypeIPv4, outer4(17, "10.0.0.1", "10.0.0.2", udp(1, 6081, append([]byte{0x40}, geneve(1, 0x6558, 0, eth4)[1:]...))), sniff.ErrMalformed},
		{"gtpu_echo", sniff.EtherTypeIPv4, outer4(17, "10.0.0.1", "10.0.0.2", udp(2152, 2152, append([]byte{0x30, 1}, gtpu(1, v4)[2:]...))), sniff.ErrNotIP},
		{"gtpu_zero_length_extension", sniff.EtherTypeIPv4, outer4(17, "10.0.0.1", "10.0.0.2", udp(2152, 2152, join([]byte{0x34, 0xff, 0, 8}, be32(1), []byte{0, 0, 0, 0x85, 0, 0, 0, 0}))), sniff.ErrMalformed},
		{"gre_routing", sniff.EtherTypeIPv4, outer4(47, "10.0.0.1", "10.0.0.2", gre(0x40, 0, 0, 0x0800, v4)), sniff.ErrMalformed},
		{"gre_key_truncated", sniff.EtherTypeIPv4, outer4(47, "10.0.0.1", "10.0.0.2", []byte{0x20, 0, 8, 0, 0}), sniff.ErrTruncated},
		{"erspan2_bad_version", sniff.EtherTypeIPv4, outer4(47, "10.0.0.1", "10.0.0.2", gre(0x10, 0, 1, 0x88be, append([]byte{0x20}, erspan2(1, eth4)[1:]...))), sniff.ErrMalformed},
		{"too_deep", sniff.EtherTypeIPv4, deep, sniff.ErrEncapDepth},
		{"empty", sniff.ProtoIP, nil, sniff.ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s sniff.Segment
			var enc sniff.Encap
			if _, err := s.DecodeLayers(tc.pkt, tc.proto, &enc); !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
		})
	}
}

// TestEncapPushVLAN checks a tag the kernel reports beside the packet: it
// goes in front of the layers found in the packet.
func TestEncapPushVLAN(t *testing.T) {
	var (
		s   sniff.Segment
		enc sniff.Encap
	)
	pkt := outer4(17, "10.0.0.1", "10.0.0.2", udp(1, 4789, vxlan(42, eth(0x0800, innerV4.build()))))
	if _, err := s.DecodeLayers(pkt, sniff.EtherTypeIPv4, &enc); err != nil {
		t.Fatal(err)
	}
	if !enc.PushVLAN(0x8100, 0xe00a) {
		t.Fatal("PushVLAN refused")
	}
	want := `[{"type":"vlan","id":10},{"type":"vxlan","vni":42,"src":"10.0.0.1","dst":"10.0.0.2"}]`
	if got := string(enc.AppendJSON(nil)); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if enc.Len() != 2 || enc.Layer(1).Type != sniff.EncapVXLAN || enc.Layer(1).ID != 42 {
		t.Errorf("got layers %+v", enc)
	}
	for range sniff.MaxEncap {
		enc.Push(sniff.Layer{Type: sniff.EncapMPLS, HasID: true})
	}
	if enc.PushVLAN(0, 1) || enc.Len() != sniff.MaxEncap {
		t.Errorf("a full Encap took another layer: %d", enc.Len())
	}
}

func TestPeelAllocs(t *testing.T) {
	for _, tc := range encapCases() {
		var (
			s   sniff.Segment
			enc sniff.Encap
			buf = make([]byte, 0, 1024)
		)
		if n := testing.AllocsPerRun(200, func() {
			_, _ = s.DecodeLayers(tc.pkt, tc.proto, &enc)
			buf = enc.AppendJSON(buf[:0])
			buf = enc.AppendText(buf[:0])
		}); n != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", tc.name, n)
		}
	}
}

var sinkEncap sniff.Encap

// BenchmarkDecodeLayers decodes one reset behind each kind of layer, from
// the first header the live capture or a file reader hands over.
func BenchmarkDecodeLayers(b *testing.B) {
	for _, tc := range encapCases() {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.pkt)))
			for b.Loop() {
				if _, err := sinkSegment.DecodeLayers(tc.pkt, tc.proto, &sinkEncap); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzDecodeLayers checks that peeling never panics, that the inner packet
// is a suffix of the input, and that what it records renders as valid JSON.
// Its seed corpus is every hand-built case, in testdata/fuzz.
func FuzzDecodeLayers(f *testing.F) {
	for _, tc := range encapCases() {
		f.Add(tc.proto, tc.pkt)
	}
	f.Fuzz(func(t *testing.T, proto uint16, b []byte) {
		var (
			s   sniff.Segment
			enc sniff.Encap
		)
		ip, err := s.DecodeLayers(b, proto, &enc)
		if err != nil {
			return
		}
		if len(ip) > len(b) || len(ip) > 0 && &ip[len(ip)-1] != &b[len(b)-1] {
			t.Fatalf("inner packet (%d bytes) is not a suffix of the input (%d bytes)", len(ip), len(b))
		}
		if s.TCPOffset+s.TCPHeaderLen > len(ip) {
			t.Fatalf("TCP header outside the inner packet")
		}
		if enc.Len() > sniff.MaxEncap {
			t.Fatalf("%d layers", enc.Len())
		}
		if j := enc.AppendJSON(nil); !json.Valid(j) {
			t.Fatalf("invalid JSON %s", j)
		}
		if txt := enc.AppendText(nil); strings.ContainsAny(string(txt), " \n\"") {
			t.Fatalf("text %q has spaces or quotes", txt)
		}
	})
}

// TestFuzzSeedCorpus checks that the checked-in seed corpus of
// FuzzDecodeLayers holds every hand-built case (go test runs it).
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeLayers")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("seed corpus: %v", err)
	}
	if len(entries) < len(encapCases()) {
		t.Errorf("%d seeds in %s, want at least %d", len(entries), dir, len(encapCases()))
	}
}
