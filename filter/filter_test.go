package filter_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rstwatch/rstwatch/filter"
	"golang.org/x/net/bpf"
)

var update = flag.Bool("update", false, "rewrite the golden files under ../testdata/filter")

// Default program sizes. Changing the program changes these: update the
// package documentation and the Core and Kernel doc comments as well.
const (
	wantCoreLen   = 380
	wantKernelLen = 388
	// maxDefaultLen is the budget for Kernel(Options{}): the program is
	// copied into every socket, keep it small.
	maxDefaultLen = 400
)

// Named option sets: the VM table refers to them, and the kernel
// integration test runs every table packet through every one of them.
var (
	optNone  = filter.Options{}
	optSYN   = filter.Options{SYN: true}
	optHS    = filter.Options{SYN: true, SYNACK: true}
	optPorts = filter.Options{Ports: []uint16{443, 80, 443}} // duplicate on purpose
	optHost4 = filter.Options{Hosts: []netip.Addr{dst4}}
	optHost6 = filter.Options{Hosts: []netip.Addr{netip.MustParseAddr("2001:db8::2%eth0")}} // zone ignored
	optMixed = filter.Options{Hosts: []netip.Addr{
		netip.MustParseAddr("::ffff:192.0.2.1"), // IPv4-mapped: matches IPv4 packets
		netip.MustParseAddr("2001:db8::1"),
	}}
	optAll = filter.Options{
		Ports:   []uint16{80},
		Hosts:   []netip.Addr{dst4, dst6},
		SYN:     true,
		Snaplen: 48,
	}
	optManyPorts = filter.Options{Ports: manyPorts(filter.MaxPorts, 80)}
	optManyHosts = filter.Options{Hosts: manyHosts(filter.MaxHosts, dst6)}
)

var optionSets = []struct {
	name string
	opts filter.Options
}{
	{"none", optNone},
	{"syn", optSYN},
	{"handshake", optHS},
	{"ports", optPorts},
	{"host4", optHost4},
	{"host6", optHost6},
	{"mixed", optMixed},
	{"all", optAll},
	{"many_ports", optManyPorts},
	{"many_hosts", optManyHosts},
}

// manyPorts returns n distinct ports ending with last.
func manyPorts(n int, last uint16) []uint16 {
	var ps []uint16
	for p := uint16(10000); len(ps) < n-1; p++ {
		ps = append(ps, p)
	}
	return append(ps, last)
}

// manyHosts returns n distinct addresses, half IPv4 and half IPv6 sharing
// most words with last, ending with last.
func manyHosts(n int, last netip.Addr) []netip.Addr {
	var hs []netip.Addr
	for i := 0; len(hs) < n-1; i++ {
		if i%2 == 0 {
			hs = append(hs, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
			continue
		}
		a := last.As16()
		a[15] += byte(i) // differs from last in the last word only
		hs = append(hs, netip.AddrFrom16(a))
	}
	return append(hs, last)
}

// Base packets, never modified: every case clones its base.
var (
	rst4 = ipv4Packet(src4, dst4, nhTCP, nil, tcpHeader(80, 40000, flagRST, 0))
	rst6 = ipv6Packet(src6, dst6, nil, nhTCP, tcpHeader(80, 40000, flagRST, 0))
)

// setFlags returns an edit that sets the TCP flags at tcpOff+13.
func setFlags(tcpOff int, flags byte) func([]byte) []byte {
	return func(b []byte) []byte {
		b[tcpOff+13] = flags
		return b
	}
}

func trimTo(n int) func([]byte) []byte {
	return func(b []byte) []byte { return b[:n] }
}

type vmCase struct {
	name string
	base []byte
	edit func([]byte) []byte // applied to a copy of base
	opts filter.Options
	want bool
}

// packet returns a fresh copy of the case's packet.
func (c vmCase) packet() []byte {
	b := bytes.Clone(c.base)
	if c.edit != nil {
		b = c.edit(b)
	}
	return b
}

func v6chain(exts ...ext6) []byte {
	return ipv6Packet(src6, dst6, exts, nhTCP, tcpHeader(80, 40000, flagRST, 0))
}

var vmCases = []vmCase{
	// IPv4 flags.
	{name: "ipv4_rst", base: rst4, want: true},
	{name: "ipv4_rst_ack", base: rst4, edit: setFlags(20, flagRST|flagACK), want: true},
	{name: "ipv4_rst_psh_ack", base: rst4, edit: setFlags(20, flagRST|flagPSH|flagACK), want: true},
	{name: "ipv4_syn", base: rst4, edit: setFlags(20, flagSYN)},
	{name: "ipv4_syn_with_syn_option", base: rst4, edit: setFlags(20, flagSYN), opts: optSYN, want: true},
	{name: "ipv4_syn_ack", base: rst4, edit: setFlags(20, flagSYN|flagACK)},
	{name: "ipv4_syn_ack_with_syn_option", base: rst4, edit: setFlags(20, flagSYN|flagACK), opts: optSYN},
	{name: "ipv4_syn_with_handshake_option", base: rst4, edit: setFlags(20, flagSYN), opts: optHS, want: true},
	{name: "ipv4_syn_ack_with_handshake_option", base: rst4, edit: setFlags(20, flagSYN|flagACK), opts: optHS, want: true},
	{name: "ipv4_syn_ack_psh_with_handshake_option", base: rst4, edit: setFlags(20, flagSYN|flagACK|flagPSH), opts: optHS, want: true},
	{name: "ipv4_ack_with_handshake_option", base: rst4, edit: setFlags(20, flagACK), opts: optHS},
	{name: "ipv4_fin_ack_with_handshake_option", base: rst4, edit: setFlags(20, flagFIN|flagACK), opts: optHS},
	{name: "ipv4_syn_ack_with_synack_only", base: rst4, edit: setFlags(20, flagSYN|flagACK), opts: filter.Options{SYNACK: true}, want: true},
	{name: "ipv4_syn_with_synack_only", base: rst4, edit: setFlags(20, flagSYN), opts: filter.Options{SYNACK: true}},
	{name: "ipv4_syn_rst", base: rst4, edit: setFlags(20, flagSYN|flagRST), want: true},
	{name: "ipv4_fin", base: rst4, edit: setFlags(20, flagFIN|flagACK)},
	{name: "ipv4_ack_with_syn_option", base: rst4, edit: setFlags(20, flagACK), opts: optSYN},
	{name: "ipv4_no_flags", base: rst4, edit: setFlags(20, 0)},

	// IPv4 header shapes.
	{name: "ipv4_options_ihl6", base: ipv4Packet(src4, dst4, nhTCP, []byte{1, 1, 1, 0}, tcpHeader(80, 40000, flagRST, 0)), want: true},
	{name: "ipv4_options_ihl15", base: ipv4Packet(src4, dst4, nhTCP, make([]byte, 40), tcpHeader(80, 40000, flagRST|flagACK, 0)), want: true},
	{name: "ipv4_options_ihl15_syn", base: ipv4Packet(src4, dst4, nhTCP, make([]byte, 40), tcpHeader(80, 40000, flagSYN, 0))},
	{name: "ipv4_tcp_options_doff8", base: ipv4Packet(src4, dst4, nhTCP, nil, tcpHeader(80, 40000, flagRST|flagACK, 12)), want: true},
	// IHL < 5 would put the TCP header inside the IP header. Each case
	// plants the RST bit where [x+13] would then read.
	{name: "ipv4_ihl_trap_ihl3", base: rst4, edit: func(b []byte) []byte {
		b[0] = 0x43
		b[12+13] |= flagRST // TCP sequence number byte
		return b
	}},
	{name: "ipv4_ihl_trap_ihl4", base: rst4, edit: func(b []byte) []byte {
		b[0] = 0x44
		b[16+13] |= flagRST
		return b
	}},
	{name: "ipv4_ihl_trap_ihl0", base: rst4, edit: func(b []byte) []byte {
		b[0] = 0x40
		b[13] |= flagRST // second byte of the source address
		return b
	}},
	{name: "ipv4_df", base: rst4, edit: func(b []byte) []byte { b[6] = 0x40; return b }, want: true},
	{name: "ipv4_first_fragment", base: rst4, edit: func(b []byte) []byte { b[6] = 0x20; return b }, want: true},
	{name: "ipv4_nonfirst_fragment", base: rst4, edit: func(b []byte) []byte { b[6], b[7] = 0x20, 0x01; return b }},
	{name: "ipv4_last_fragment", base: rst4, edit: func(b []byte) []byte { b[6], b[7] = 0x00, 0xb9; return b }},
	{name: "ipv4_fragment_offset_high_bits", base: rst4, edit: func(b []byte) []byte { b[6] = 0x10; return b }},
	{name: "ipv4_truncated_at_flags", base: rst4, edit: trimTo(20 + 14), want: true},
	{name: "truncated_by_1", base: rst4, edit: trimTo(20 + 13)},
	{name: "ipv4_truncated_header", base: rst4, edit: trimTo(19)},
	{name: "udp", base: ipv4Packet(src4, dst4, nhUDP, nil, tcpHeader(80, 40000, flagRST, 0))},
	{name: "ipv4_icmp", base: ipv4Packet(src4, dst4, nhICMP, nil, tcpHeader(80, 40000, flagRST, 0))},

	// Not IP.
	{name: "empty", base: []byte{}},
	{name: "one_byte", base: []byte{0x45}},
	{name: "arp_like_garbage", base: []byte{
		0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // Ethernet, IPv4, request
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 0, 2, 1,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 2,
		0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, // RST bits everywhere
	}},
	{name: "version5", base: rst4, edit: func(b []byte) []byte { b[0] = 0x55; return b }},
	{name: "version6_ipv4_body", base: rst4, edit: func(b []byte) []byte { b[0] = 0x65; return b }},

	// IPv6.
	{name: "ipv6_rst", base: rst6, want: true},
	{name: "ipv6_rst_ack", base: rst6, edit: setFlags(40, flagRST|flagACK), want: true},
	{name: "ipv6_syn", base: rst6, edit: setFlags(40, flagSYN)},
	{name: "ipv6_syn_with_syn_option", base: rst6, edit: setFlags(40, flagSYN), opts: optSYN, want: true},
	{name: "ipv6_syn_ack", base: rst6, edit: setFlags(40, flagSYN|flagACK)},
	{name: "ipv6_syn_ack_with_syn_option", base: rst6, edit: setFlags(40, flagSYN|flagACK), opts: optSYN},
	{name: "ipv6_syn_ack_with_handshake_option", base: rst6, edit: setFlags(40, flagSYN|flagACK), opts: optHS, want: true},
	{name: "ipv6_fin", base: rst6, edit: setFlags(40, flagFIN)},
	{name: "ipv6_truncated_at_flags", base: rst6, edit: trimTo(40 + 14), want: true},
	{name: "ipv6_truncated_by_1", base: rst6, edit: trimTo(40 + 13)},
	{name: "ipv6_truncated_fixed_header", base: rst6, edit: trimTo(39)},
	{name: "ipv6_hopbyhop_rst", base: v6chain(optsExt(nhHopByHop, 0)), want: true},
	{name: "ipv6_chain_hbh_routing_dest_frag_rst", base: v6chain(
		optsExt(nhHopByHop, 0), optsExt(nhRouting, 2), optsExt(nhDestOpts, 1), fragExt(0, true),
	), want: true},
	{name: "ipv6_chain_max_depth", base: v6chain( // RFC 8200 4.1 order without ESP
		optsExt(nhHopByHop, 0), optsExt(nhDestOpts, 0), optsExt(nhRouting, 0),
		fragExt(0, false), ahExt(4), optsExt(nhDestOpts, 0),
	), want: true},
	{name: "ipv6_too_deep_chain", base: v6chain(
		optsExt(nhHopByHop, 0), optsExt(nhDestOpts, 0), optsExt(nhRouting, 0),
		fragExt(0, false), ahExt(4), optsExt(nhDestOpts, 0), optsExt(nhDestOpts, 0),
	)},
	{name: "ipv6_big_dest_options", base: v6chain(optsExt(nhDestOpts, 255)), want: true},
	{name: "ipv6_first_fragment", base: v6chain(fragExt(0, true)), want: true},
	{name: "ipv6_atomic_fragment", base: v6chain(fragExt(0, false)), want: true},
	{name: "ipv6_fragment_reserved_bits", base: v6chain(fragExt(0, true)), edit: func(b []byte) []byte {
		b[40+1] = 0xff  // reserved byte, ignored on reception
		b[40+3] |= 0x06 // reserved bits
		return b
	}, want: true},
	{name: "ipv6_nonfirst_fragment", base: v6chain(fragExt(1, true))},
	{name: "ipv6_nonfirst_fragment_high_offset", base: v6chain(fragExt(0x1000, false))},
	{name: "ipv6_ah_rst", base: v6chain(ahExt(4)), want: true},
	{name: "ipv6_hbh_ah_rst", base: v6chain(optsExt(nhHopByHop, 1), ahExt(7)), want: true},
	{name: "ipv6_esp", base: ipv6Packet(src6, dst6, nil, nhESP, tcpHeader(80, 40000, flagRST, 0))},
	{name: "ipv6_hbh_esp", base: ipv6Packet(src6, dst6, []ext6{optsExt(nhHopByHop, 0)}, nhESP, tcpHeader(80, 40000, flagRST, 0))},
	{name: "ipv6_no_next_header", base: ipv6Packet(src6, dst6, nil, nhNoNext, tcpHeader(80, 40000, flagRST, 0))},
	{name: "ipv6_udp", base: ipv6Packet(src6, dst6, nil, nhUDP, tcpHeader(80, 40000, flagRST, 0))},
	{name: "ipv6_icmpv6", base: ipv6Packet(src6, dst6, nil, nhICMPv6, tcpHeader(80, 40000, flagRST, 0))},
	{name: "ipv6_truncated_in_ext_header", base: v6chain(optsExt(nhHopByHop, 1)), edit: trimTo(40 + 1)},
	{name: "ipv6_truncated_after_ext_header", base: v6chain(optsExt(nhHopByHop, 1)), edit: trimTo(40 + 16 + 13)},

	// Port clause.
	{name: "ipv4_port_src_match", base: rst4, opts: optPorts, want: true},
	{name: "ipv4_port_dst_match", base: ipv4Packet(src4, dst4, nhTCP, nil, tcpHeader(40000, 443, flagRST, 0)), opts: optPorts, want: true},
	{name: "ipv4_port_no_match", base: ipv4Packet(src4, dst4, nhTCP, nil, tcpHeader(40000, 8080, flagRST, 0)), opts: optPorts},
	{name: "ipv6_port_src_match", base: rst6, opts: optPorts, want: true},
	{name: "ipv6_port_dst_match", base: v6chain(fragExt(0, true)), edit: func(b []byte) []byte {
		be.PutUint16(b[48:], 40000)
		be.PutUint16(b[50:], 443)
		return b
	}, opts: optPorts, want: true},
	{name: "ipv6_port_no_match", base: ipv6Packet(src6, dst6, nil, nhTCP, tcpHeader(40000, 8080, flagRST, 0)), opts: optPorts},
	{name: "ipv4_port_truncated", base: rst4, edit: trimTo(20 + 3), opts: optPorts},
	{name: "ipv4_many_ports_last", base: rst4, opts: optManyPorts, want: true},
	{name: "ipv6_many_ports_none", base: ipv6Packet(src6, dst6, nil, nhTCP, tcpHeader(40000, 8080, flagRST, 0)), opts: optManyPorts},

	// Host clause.
	{name: "ipv4_host_dst_match", base: rst4, opts: optHost4, want: true},
	{name: "ipv4_host_src_match", base: ipv4Packet(dst4, src4, nhTCP, nil, tcpHeader(80, 40000, flagRST, 0)), opts: optHost4, want: true},
	{name: "ipv4_host_no_match", base: ipv4Packet(src4, netip.MustParseAddr("192.0.2.3"), nhTCP, nil, tcpHeader(80, 40000, flagRST, 0)), opts: optHost4},
	{name: "ipv4_host_list_ipv6_only", base: rst4, opts: optHost6},
	{name: "ipv6_host_list_ipv4_only", base: rst6, opts: optHost4},
	{name: "ipv6_host_dst_match", base: rst6, opts: optHost6, want: true},
	{name: "ipv6_host_src_match", base: ipv6Packet(dst6, src6, nil, nhTCP, tcpHeader(80, 40000, flagRST, 0)), opts: optHost6, want: true},
	{name: "ipv6_host_after_ext_headers", base: v6chain(optsExt(nhHopByHop, 0), ahExt(4)), opts: optHost6, want: true},
	{name: "ipv6_host_last_word_differs", base: ipv6Packet(src6, netip.MustParseAddr("2001:db8::3"), nil, nhTCP, tcpHeader(80, 40000, flagRST, 0)), opts: optHost6},
	{name: "ipv6_host_first_word_differs", base: ipv6Packet(src6, netip.MustParseAddr("2001:db9::2"), nil, nhTCP, tcpHeader(80, 40000, flagRST, 0)), opts: optHost6},
	{name: "ipv6_host_truncated", base: rst6, edit: trimTo(30), opts: optHost6},
	{name: "mixed_hosts_ipv4_mapped_src", base: rst4, opts: optMixed, want: true},
	{name: "mixed_hosts_ipv6_src", base: rst6, opts: optMixed, want: true},
	{name: "mixed_hosts_ipv4_no_match", base: ipv4Packet(dst4, dst4, nhTCP, nil, tcpHeader(80, 40000, flagRST, 0)), opts: optMixed},
	{name: "ipv6_many_hosts_last", base: rst6, opts: optManyHosts, want: true},
	{name: "ipv6_many_hosts_none", base: ipv6Packet(src6, netip.MustParseAddr("2001:db8::ff"), nil, nhTCP, tcpHeader(80, 40000, flagRST, 0)), opts: optManyHosts},
	{name: "ipv4_many_hosts_none", base: rst4, opts: optManyHosts},

	// Every clause at once.
	{name: "all_ipv4_syn", base: ipv4Packet(src4, dst4, nhTCP, nil, tcpHeader(40000, 80, flagSYN, 0)), opts: optAll, want: true},
	{name: "all_ipv6_syn", base: ipv6Packet(src6, dst6, nil, nhTCP, tcpHeader(40000, 80, flagSYN, 0)), opts: optAll, want: true},
	{name: "all_ipv6_rst_ack", base: rst6, edit: setFlags(40, flagRST|flagACK), opts: optAll, want: true},
	{name: "all_syn_ack", base: ipv4Packet(src4, dst4, nhTCP, nil, tcpHeader(40000, 80, flagSYN|flagACK, 0)), opts: optAll},
	{name: "all_port_mismatch", base: ipv4Packet(src4, dst4, nhTCP, nil, tcpHeader(40000, 81, flagSYN, 0)), opts: optAll},
	{name: "all_host_mismatch", base: ipv6Packet(src6, src6, nil, nhTCP, tcpHeader(40000, 80, flagSYN, 0)), opts: optAll},
}

// Tunnel packets: the outer addresses are under 198.51.100.0/24 and
// 2001:db8:1::/48, the inner ones those of the plain cases, so host
// clauses test the inner connection.
var (
	out4a, out4b = netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	out6a, out6b = netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:1::2")
	ack4         = ipv4Packet(src4, dst4, nhTCP, nil, tcpHeader(80, 40000, flagACK, 0))
	syn6         = ipv6Packet(src6, dst6, nil, nhTCP, tcpHeader(40000, 80, flagSYN, 0))
)

func vx4(dport uint16, flags byte, frame []byte) []byte {
	return ipv4Packet(out4a, out4b, nhUDP, nil, udpHeader(40000, dport, vxlanHeader(flags, 42, frame)))
}

func gre4(flags, version byte, proto uint16, payload []byte) []byte {
	return ipv4Packet(out4a, out4b, nhGRE, nil, greHeader(flags, version, proto, payload))
}

var tunnelCases = []vmCase{
	{name: "vxlan_ipv4_rst", base: vx4(4789, 0x08, etherFrame(etherIPv4, rst4)), want: true},
	{name: "vxlan_8472_ipv6_rst", base: vx4(8472, 0x08, etherFrame(etherIPv6, rst6)), want: true},
	{name: "vxlan_ipv6_outer", base: ipv6Packet(out6a, out6b, nil, nhUDP, udpHeader(1, 4789, vxlanHeader(0x08, 1, etherFrame(etherIPv4, rst4)))), want: true},
	{name: "vxlan_ipv6_outer_ext", base: ipv6Packet(out6a, out6b, []ext6{optsExt(nhDestOpts, 1)}, nhUDP, udpHeader(1, 4789, vxlanHeader(0x08, 1, etherFrame(etherIPv6, rst6)))), want: true},
	{name: "vxlan_ack", base: vx4(4789, 0x08, etherFrame(etherIPv4, ack4))},
	{name: "vxlan_no_I_flag", base: vx4(4789, 0, etherFrame(etherIPv4, rst4))},
	{name: "vxlan_inner_vlan", base: vx4(4789, 0x08, etherFrame(etherIPv6, rst6, [2]uint16{0x8100, 10})), want: true},
	{name: "vxlan_inner_qinq", base: vx4(4789, 0x08, etherFrame(etherIPv4, rst4, [2]uint16{0x88a8, 10}, [2]uint16{0x8100, 20}))},
	{name: "vxlan_inner_arp", base: vx4(4789, 0x08, etherFrame(etherARP, make([]byte, 28)))},
	{name: "vxlan_truncated", base: vx4(4789, 0x08, etherFrame(etherIPv4, rst4)), edit: trimTo(20 + 8 + 8 + 14 + 20 + 13)},
	{name: "vxlan_in_vxlan", base: vx4(4789, 0x08, etherFrame(etherIPv4, vx4(4789, 0x08, etherFrame(etherIPv4, rst4))))},
	{name: "vxlan_inner_fragment", base: vx4(4789, 0x08, etherFrame(etherIPv4, rst4)), edit: func(b []byte) []byte { b[50+7] = 1; return b }},
	{name: "vxlan_outer_fragment", base: vx4(4789, 0x08, etherFrame(etherIPv4, rst4)), edit: func(b []byte) []byte { b[7] = 1; return b }},
	{name: "vxlan_outer_bad_ihl", base: vx4(4789, 0x08, etherFrame(etherIPv4, rst4)), edit: func(b []byte) []byte { b[0] = 0x44; return b }},
	{name: "vxlan_inner_bad_ihl", base: vx4(4789, 0x08, etherFrame(etherIPv4, rst4)), edit: func(b []byte) []byte { b[50] = 0x44; return b }},
	{name: "vxlan_inner_ipv6_ext", base: vx4(4789, 0x08, etherFrame(etherIPv6, v6chain(optsExt(nhHopByHop, 0), fragExt(0, true)))), want: true},
	{name: "vxlan_inner_ipv6_non_first_fragment", base: vx4(4789, 0x08, etherFrame(etherIPv6, v6chain(fragExt(8, false))))},
	{name: "vxlan_inner_syn", base: vx4(4789, 0x08, etherFrame(etherIPv6, syn6)), opts: optSYN, want: true},
	{name: "vxlan_inner_port", base: vx4(4789, 0x08, etherFrame(etherIPv4, rst4)), opts: optPorts, want: true},
	{name: "vxlan_inner_host4_ipv6_outer", base: ipv6Packet(out6a, out6b, nil, nhUDP, udpHeader(1, 4789, vxlanHeader(0x08, 1, etherFrame(etherIPv4, rst4)))), opts: optHost4, want: true},
	{name: "vxlan_outer_host_only", base: vx4(4789, 0x08, etherFrame(etherIPv4, rst4)), opts: filter.Options{Hosts: []netip.Addr{out4a}}},
	{name: "vxlan_inner_host6", base: vx4(4789, 0x08, etherFrame(etherIPv6, rst6)), opts: optHost6, want: true},
	{name: "udp_other_port", base: ipv4Packet(out4a, out4b, nhUDP, nil, udpHeader(1, 4790, vxlanHeader(0x08, 1, etherFrame(etherIPv4, rst4))))},
	{name: "geneve_options", base: ipv4Packet(out4a, out4b, nhUDP, nil, udpHeader(1, 6081, geneveHeader(3, 0x6558, etherFrame(etherIPv4, rst4)))), want: true},
	{name: "geneve_ipv6_payload", base: ipv4Packet(out4a, out4b, nhUDP, nil, udpHeader(1, 6081, geneveHeader(0, etherIPv6, rst6))), want: true},
	{name: "geneve_version_1", base: ipv4Packet(out4a, out4b, nhUDP, nil, udpHeader(1, 6081, geneveHeader(0x40, 0x6558, etherFrame(etherIPv4, rst4))))},
	{name: "geneve_erspan_protocol", base: ipv4Packet(out4a, out4b, nhUDP, nil, udpHeader(1, 6081, geneveHeader(0, 0x88be, erspan2Header(etherFrame(etherIPv4, rst4)))))},
	{name: "gre_ipv4", base: gre4(0, 0, etherIPv4, rst4), want: true},
	{name: "gre_key", base: gre4(0x20, 0, etherIPv6, rst6), want: true},
	{name: "gre_seq", base: gre4(0x10, 0, etherIPv4, rst4), want: true},
	{name: "gre_csum", base: gre4(0x80, 0, etherIPv4, rst4), want: true},
	{name: "gre_key_seq", base: gre4(0x30, 0, etherIPv4, rst4), want: true},
	{name: "gre_csum_key_seq", base: gre4(0xb0, 0, etherIPv4, rst4), want: true},
	{name: "gre_csum_key_seq_ack", base: gre4(0xb0, 0, etherIPv4, ack4)},
	{name: "gre_routing", base: gre4(0x40, 0, etherIPv4, rst4)},
	{name: "gre_version_1", base: gre4(0x20, 1, etherIPv4, rst4)},
	{name: "gretap", base: gre4(0x20, 0, 0x6558, etherFrame(etherIPv4, rst4)), want: true},
	{name: "gre_ipv6_outer", base: ipv6Packet(out6a, out6b, nil, nhGRE, greHeader(0, 0, etherIPv4, rst4)), want: true},
	{name: "erspan1", base: gre4(0, 0, 0x88be, etherFrame(etherIPv6, rst6)), want: true},
	{name: "erspan2", base: gre4(0x10, 0, 0x88be, erspan2Header(etherFrame(etherIPv4, rst4))), want: true},
	{name: "erspan3", base: gre4(0x10, 0, 0x22eb, erspan3Header(false, etherFrame(etherIPv4, rst4))), want: true},
	{name: "erspan3_subheader", base: gre4(0x10, 0, 0x22eb, erspan3Header(true, etherFrame(etherIPv6, rst6))), want: true},
	{name: "gre_unknown_protocol", base: gre4(0, 0, 0x8847, rst4)},
	{name: "ipip", base: ipv4Packet(out4a, out4b, nhIPIP, nil, rst4), want: true},
	{name: "sit", base: ipv4Packet(out4a, out4b, nhIPv6, nil, rst6), want: true},
	{name: "ipip6", base: ipv6Packet(out6a, out6b, nil, nhIPIP, rst4), want: true},
	{name: "ip6ip6_ext", base: ipv6Packet(out6a, out6b, []ext6{optsExt(nhDestOpts, 0)}, nhIPv6, rst6), want: true},
	{name: "ipip_ack", base: ipv4Packet(out4a, out4b, nhIPIP, nil, ack4)},
	{name: "ipip_in_ipip", base: ipv4Packet(out4a, out4b, nhIPIP, nil, ipv4Packet(out4a, out4b, nhIPIP, nil, rst4))},
	{name: "ipip_outer_fragment", base: ipv4Packet(out4a, out4b, nhIPIP, nil, rst4), edit: func(b []byte) []byte { b[7] = 1; return b }},
}

func init() { vmCases = append(vmCases, tunnelCases...) }

func TestCoreVM(t *testing.T) {
	t.Parallel()
	for _, tt := range vmCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pkt := tt.packet()
			prog, err := filter.Core(tt.opts)
			if err != nil {
				t.Fatalf("failed to build program: %v", err)
			}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				t.Fatalf("failed to load program into VM: %v", err)
			}
			got, err := vm.Run(pkt)
			if err != nil {
				t.Fatalf("failed to run program: %v", err)
			}
			want := 0
			if tt.want {
				want = int(snaplen(tt.opts))
			}
			if got != want {
				t.Fatalf("unexpected verdict for % x (-want +got):\n-%d\n+%d", pkt, want, got)
			}
			// The reference decoder must agree, or the fuzz test's
			// oracle is wrong.
			if ref := reference(pkt, tt.opts); ref != tt.want {
				t.Fatalf("reference decoder disagrees with the table: got %v", ref)
			}
		})
	}
}

func snaplen(o filter.Options) uint32 {
	if o.Snaplen == 0 {
		return filter.DefaultSnaplen
	}
	return o.Snaplen
}

// reference is an independent decoder: it reports whether p, a packet that
// starts at the IP header, is a TCP RST (or, with o.SYN, a SYN without ACK;
// with o.SYNACK, a SYN|ACK) that the Ports and Hosts clauses admit, either
// itself or inside one VXLAN, Geneve, GRE or IP-in-IP tunnel (see
// refTunnel). Like the BPF program it ignores length fields and checksums
// and needs the bytes up to the TCP flags.
func reference(p []byte, o filter.Options) bool {
	return refIP(p, 0, o, true)
}

// refIP decodes the IP packet at p[x:]; outer says tunnels may follow.
func refIP(p []byte, x int, o filter.Options, outer bool) bool {
	if len(p) <= x {
		return false
	}
	var (
		tcp      int
		src, dst netip.Addr
	)
	switch p[x] >> 4 {
	case 4:
		if len(p) < x+20 {
			return false
		}
		ihl := int(p[x]&0x0f) * 4
		if be.Uint16(p[x+6:])&0x1fff != 0 || ihl < 20 {
			return false
		}
		if p[x+9] != nhTCP {
			if outer {
				return refTunnel(p, x+ihl, p[x+9], o)
			}
			return false
		}
		tcp = x + ihl
		src, dst = netip.AddrFrom4([4]byte(p[x+12:x+16])), netip.AddrFrom4([4]byte(p[x+16:x+20]))
	case 6:
		if len(p) < x+40 {
			return false
		}
		src, dst = netip.AddrFrom16([16]byte(p[x+8:x+24])), netip.AddrFrom16([16]byte(p[x+24:x+40]))
		nh, off := p[x+6], x+40
		for depth := 0; nh != nhTCP; depth++ {
			if nh == nhUDP || nh == nhGRE || nh == nhIPIP || nh == nhIPv6 {
				if outer {
					return refTunnel(p, off, nh, o)
				}
				return false
			}
			if depth == filter.MaxIPv6ExtHeaders || len(p) < off+4 {
				return false
			}
			var n int
			switch nh {
			case nhHopByHop, nhRouting, nhDestOpts:
				n = (int(p[off+1]) + 1) * 8
			case nhAH:
				n = (int(p[off+1]) + 2) * 4
			case nhFragment:
				if be.Uint16(p[off+2:])>>3 != 0 {
					return false
				}
				n = 8
			default:
				return false
			}
			nh, off = p[off], off+n
		}
		tcp = off
	default:
		return false
	}
	if len(p) < tcp+14 {
		return false
	}
	flags := p[tcp+13]
	if flags&flagRST == 0 && !(o.SYN && flags&(flagSYN|flagACK) == flagSYN) && !(o.SYNACK && flags&(flagSYN|flagACK) == flagSYN|flagACK) {
		return false
	}
	if len(o.Ports) > 0 {
		sp, dp := be.Uint16(p[tcp:]), be.Uint16(p[tcp+2:])
		found := false
		for _, port := range o.Ports {
			found = found || port == sp || port == dp
		}
		if !found {
			return false
		}
	}
	if len(o.Hosts) > 0 {
		found := false
		for _, h := range o.Hosts {
			h = h.WithZone("").Unmap()
			found = found || h == src || h == dst
		}
		if !found {
			return false
		}
	}
	return true
}

// refTunnel finds the IP packet inside the tunnel header of protocol proto
// at p[x:] (VXLAN on UDP 4789 and 8472, RFC 7348; Geneve on 6081, RFC
// 8926; GRE version 0 without routing, RFC 2784 and 2890, carrying IP,
// Ethernet or ERSPAN I-III) and decodes it. An inner Ethernet frame may
// have one 802.1Q tag.
func refTunnel(p []byte, x int, proto byte, o filter.Options) bool {
	u16 := func(off int) (uint16, bool) {
		if off < 0 || len(p) < off+2 {
			return 0, false
		}
		return be.Uint16(p[off:]), true
	}
	u8 := func(off int) (byte, bool) {
		if len(p) < off+1 {
			return 0, false
		}
		return p[off], true
	}
	var payload uint16 // EtherType of what follows x
	switch proto {
	case nhIPIP, nhIPv6: // RFC 2003, RFC 4213, RFC 2473: the version nibble decides
		return refIP(p, x, o, false)
	case nhUDP:
		port, ok := u16(x + 2)
		if !ok {
			return false
		}
		switch port {
		case 4789, 8472:
			f, ok := u8(x + 8)
			if !ok || f&0x08 == 0 {
				return false
			}
			x, payload = x+16, 0x6558
		case 6081:
			if payload, ok = u16(x + 10); !ok {
				return false
			}
			f, ok := u8(x + 8)
			if !ok || f&0xc0 != 0 {
				return false
			}
			x += 16 + int(f&0x3f)*4
		default:
			return false
		}
	case nhGRE:
		v, ok1 := u8(x + 1)
		pr, ok2 := u16(x + 2)
		f, ok3 := u8(x)
		if !ok1 || v&0x07 != 0 || !ok2 || !ok3 || f&0x4f != 0 {
			return false
		}
		n := 4
		for _, bit := range []byte{0x80, 0x20, 0x10} {
			if f&bit != 0 {
				n += 4
			}
		}
		x, payload = x+n, pr
		switch payload {
		case 0x88be: // ERSPAN I (no sequence number) or II
			if f&0x10 != 0 {
				x += 8
			}
			payload = 0x6558
		case 0x22eb: // ERSPAN III
			b, ok := u8(x + 11)
			if !ok {
				return false
			}
			x += 12 + int(b&1)*8
			payload = 0x6558
		}
	default:
		return false
	}
	if payload == 0x6558 {
		et, ok := u16(x + 12)
		if !ok {
			return false
		}
		if et == 0x8100 {
			if et, ok = u16(x + 16); !ok {
				return false
			}
			x += 4
		}
		x += 14
		payload = et
	}
	if payload != 0x0800 && payload != 0x86dd {
		return false
	}
	return refIP(p, x, o, false)
}

// FuzzCore runs arbitrary bytes through Core in the VM for every option set:
// the VM must never fail, and its verdict must match the reference decoder.
func FuzzCore(f *testing.F) {
	for _, tt := range vmCases {
		f.Add(tt.packet())
	}
	type prog struct {
		name string
		opts filter.Options
		vm   *bpf.VM
	}
	var progs []prog
	for _, s := range optionSets {
		p, err := filter.Core(s.opts)
		if err != nil {
			f.Fatalf("failed to build program %s: %v", s.name, err)
		}
		vm, err := bpf.NewVM(p)
		if err != nil {
			f.Fatalf("failed to load program %s into VM: %v", s.name, err)
		}
		progs = append(progs, prog{s.name, s.opts, vm})
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, p := range progs {
			got, err := p.vm.Run(pkt)
			if err != nil {
				t.Fatalf("failed to run program %s: %v", p.name, err)
			}
			want := 0
			if reference(pkt, p.opts) {
				want = int(snaplen(p.opts))
			}
			if got != want {
				t.Fatalf("program %s disagrees with the reference for % x (-want +got):\n-%d\n+%d", p.name, pkt, want, got)
			}
		}
	})
}

func TestGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts filter.Options
	}{
		{name: "kernel_default", opts: filter.Options{}},
		{name: "kernel_ports_hosts_syn", opts: filter.Options{
			Ports:      []uint16{22, 443},
			Hosts:      []netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("fd52::1")},
			SYN:        true,
			Snaplen:    128,
			Interfaces: []int{2, 7},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := filter.Kernel(tt.opts)
			if err != nil {
				t.Fatalf("failed to build program: %v", err)
			}
			var sb strings.Builder
			for _, ins := range prog {
				fmt.Fprintln(&sb, ins)
			}
			got := sb.String()
			path := filepath.Join("..", "testdata", "filter", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatalf("failed to write golden file: %v", err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("failed to read golden file (run with -update to create it): %v", err)
			}
			if diff := lineDiff(string(want), got); diff != "" {
				t.Fatalf("unexpected program, run with -update if intended (-want +got):\n%s", diff)
			}
		})
	}
}

// lineDiff is a minimal line-by-line diff, enough for instruction listings.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var sb strings.Builder
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&sb, "%4d: -%s\n      +%s\n", i, wl, gl)
		}
	}
	return sb.String()
}

func TestInstructionCount(t *testing.T) {
	t.Parallel()
	core, err := filter.Core(filter.Options{})
	if err != nil {
		t.Fatalf("failed to build core program: %v", err)
	}
	kernel, err := filter.Kernel(filter.Options{})
	if err != nil {
		t.Fatalf("failed to build kernel program: %v", err)
	}
	if got := len(core); got != wantCoreLen {
		t.Errorf("unexpected Core length (-want +got):\n-%d\n+%d", wantCoreLen, got)
	}
	if got := len(kernel); got != wantKernelLen || got > maxDefaultLen {
		t.Errorf("unexpected Kernel length, budget %d (-want +got):\n-%d\n+%d", maxDefaultLen, wantKernelLen, got)
	}
	// Core is a suffix of Kernel: the prologue only falls through into it.
	if !reflect.DeepEqual(core, kernel[len(kernel)-len(core):]) {
		t.Errorf("Core is not the tail of Kernel")
	}
	t.Logf("Kernel(Options{}) = %d instructions, Core = %d", len(kernel), len(core))
}

// TestLimits builds the largest programs Options allow: they must stay
// within the kernel's 4096 instructions, assemble, and still filter
// correctly (their far jumps go through trampolines). IPv6 hosts cost 8
// instructions each per direction, so all-IPv6 host lists are the worst case.
func TestLimits(t *testing.T) {
	t.Parallel()
	var ifaces []int
	for i := range filter.MaxInterfaces {
		ifaces = append(ifaces, i+1)
	}
	var hosts6 []netip.Addr
	for i := range filter.MaxHosts - 1 {
		hosts6 = append(hosts6, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb9, 15: byte(i)}))
	}
	hosts6 = append(hosts6, dst6)
	mixed := filter.Options{
		Ports:      manyPorts(filter.MaxPorts, 80),
		Hosts:      manyHosts(filter.MaxHosts, dst6),
		SYN:        true,
		Interfaces: ifaces,
	}
	worst := mixed
	worst.Hosts = hosts6

	tests := []struct {
		name string
		opts filter.Options
		pkt  []byte
		want bool
	}{
		{"mixed_last_host_last_port", mixed, rst6, true},
		{"mixed_first_host", mixed, ipv4Packet(netip.AddrFrom4([4]byte{198, 51, 100, 0}), dst4, nhTCP, nil, tcpHeader(80, 1, flagSYN, 0)), true},
		{"mixed_no_host", mixed, rst4, false},
		{"ipv6_last_host", worst, rst6, true},
		{"ipv6_no_host", worst, ipv6Packet(src6, src6, nil, nhTCP, tcpHeader(80, 40000, flagRST, 0)), false},
		{"ipv6_only_rejects_ipv4", worst, rst4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kernel, err := filter.Kernel(tt.opts)
			if err != nil {
				t.Fatalf("failed to build kernel program: %v", err)
			}
			if len(kernel) > 4096 {
				t.Fatalf("program too long for the kernel: %d instructions", len(kernel))
			}
			if _, err := filter.Assemble(tt.opts); err != nil {
				t.Fatalf("failed to assemble program: %v", err)
			}
			core, err := filter.Core(tt.opts)
			if err != nil {
				t.Fatalf("failed to build core program: %v", err)
			}
			vm, err := bpf.NewVM(core)
			if err != nil {
				t.Fatalf("failed to load program into VM: %v", err)
			}
			got, err := vm.Run(tt.pkt)
			if err != nil {
				t.Fatalf("failed to run program: %v", err)
			}
			if (got != 0) != tt.want {
				t.Errorf("unexpected verdict (-want +got):\n-%v\n+%v", tt.want, got != 0)
			}
			t.Logf("Kernel = %d instructions, Core = %d", len(kernel), len(core))
		})
	}
}

func TestOptionsErrors(t *testing.T) {
	t.Parallel()
	tooManyHosts := manyHosts(filter.MaxHosts, dst6)
	tooManyHosts = append(tooManyHosts, src4)
	tests := []struct {
		name string
		opts filter.Options
	}{
		{"too_many_ports", filter.Options{Ports: manyPorts(filter.MaxPorts+1, 80)}},
		{"too_many_hosts", filter.Options{Hosts: tooManyHosts}},
		{"invalid_host", filter.Options{Hosts: []netip.Addr{{}}}},
		{"zero_interface", filter.Options{Interfaces: []int{0}}},
		{"negative_interface", filter.Options{Interfaces: []int{-1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := filter.Assemble(tt.opts)
			if !errors.Is(err, filter.ErrInvalidOptions) {
				t.Fatalf("unexpected error (-want +got):\n-%v\n+%v", filter.ErrInvalidOptions, err)
			}
		})
	}

	// Duplicates do not count against the limits.
	dup := filter.Options{Ports: append(manyPorts(filter.MaxPorts, 80), 80, 80)}
	if _, err := filter.Assemble(dup); err != nil {
		t.Fatalf("failed to assemble program with duplicate ports: %v", err)
	}
}
