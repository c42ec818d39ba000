package filter

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"
)

// DefaultSnaplen is the number of bytes kept per accepted packet when
// Options.Snaplen is 0.
const DefaultSnaplen = 2048

// Limits on Options. They keep the program far below the kernel's 4096
// instructions: the worst case (every limit reached, all hosts IPv6, SYN)
// is 2995 instructions.
const (
	MaxPorts      = 64
	MaxHosts      = 64
	MaxInterfaces = 64
)

// MaxIPv6ExtHeaders is how many IPv6 extension headers Core walks before the
// TCP header. Six covers the full order recommended by RFC 8200 section 4.1
// up to the upper layer (hop-by-hop, destination options, routing, fragment,
// AH, destination options; ESP, which would come before the last one, hides
// TCP anyway). Packets with longer chains are rejected. Each level costs 19
// instructions.
const MaxIPv6ExtHeaders = 6

// ErrInvalidOptions is wrapped by the errors Core, Kernel and Assemble return
// for Options they cannot turn into a program.
var ErrInvalidOptions = errors.New("filter: invalid options")

// Options selects what the program accepts. The zero value accepts every TCP
// RST over IPv4 and IPv6.
type Options struct {
	// Ports restricts the program to segments whose TCP source or
	// destination port is listed. Empty means any port.
	Ports []uint16
	// Hosts restricts the program to packets whose IP source or
	// destination address is listed. IPv4 and IPv6 addresses may be mixed;
	// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match IPv4 packets and
	// zones are ignored. Empty means any address. When only one family is
	// listed, packets of the other family are rejected.
	Hosts []netip.Addr
	// SYN also accepts TCP SYNs without ACK (used to attribute the reset
	// that answers them), subject to the same Ports and Hosts clauses.
	SYN bool
	// SYNACK also accepts TCP SYN|ACK segments, the handshake's answer:
	// with SYN it tells which end connected and which accepted, and both
	// ends' initial sequence numbers (diagnose's roles and its "completed
	// exchange" test). Same Ports and Hosts clauses.
	SYNACK bool
	// Snaplen is the number of bytes returned for an accepted packet; 0
	// means DefaultSnaplen.
	Snaplen uint32
	// Interfaces restricts the program to packets seen on these interface
	// indexes (SKF_AD_IFINDEX). Kernel only: Core ignores it. Empty means
	// all interfaces.
	Interfaces []int
}

// Protocol numbers (RFC 791, RFC 8200 and the IANA registry) and offsets.
const (
	protoHopByHop = 0  // IPv6 hop-by-hop options, RFC 8200 section 4.3
	protoTCP      = 6  // RFC 9293
	protoRouting  = 43 // RFC 8200 section 4.4
	protoFragment = 44 // RFC 8200 section 4.5
	protoAH       = 51 // RFC 4302
	protoDestOpts = 60 // RFC 8200 section 4.6

	ipv4MinHeader = 20 // IHL 5, RFC 791 section 3.1
	ipv6Header    = 40 // fixed header, RFC 8200 section 3

	tcpFlagsOff = 13 // offset of the flags byte in the TCP header
	tcpSYN      = 0x02
	tcpRST      = 0x04
	tcpACK      = 0x10
)

// Linux values used by the kernel-only prologue.
const (
	etherTypeIPv4  = 0x0800 // SKF_AD_PROTOCOL, host byte order
	etherTypeIPv6  = 0x86dd
	arphrdLoopback = 772 // ARPHRD_LOOPBACK, include/uapi/linux/if_arp.h
	packetHost     = 0   // PACKET_HOST, packet(7)
)

// spec is Options validated and normalised.
type spec struct {
	ports   []uint16
	hosts4  []uint32    // IPv4 addresses as big-endian words
	hosts6  [][4]uint32 // IPv6 addresses as four big-endian words
	hosts   bool        // a host clause applies
	syn     bool
	synack  bool
	snaplen uint32
	ifaces  []uint32
}

func (o Options) spec() (*spec, error) {
	s := &spec{syn: o.SYN, synack: o.SYNACK, snaplen: o.Snaplen}
	if s.snaplen == 0 {
		s.snaplen = DefaultSnaplen
	}

	seenPort := make(map[uint16]bool)
	for _, p := range o.Ports {
		if !seenPort[p] {
			seenPort[p] = true
			s.ports = append(s.ports, p)
		}
	}
	if len(s.ports) > MaxPorts {
		return nil, fmt.Errorf("%w: %d distinct ports, at most %d", ErrInvalidOptions, len(s.ports), MaxPorts)
	}

	seenHost := make(map[netip.Addr]bool)
	for _, h := range o.Hosts {
		if !h.IsValid() {
			return nil, fmt.Errorf("%w: invalid host address %q", ErrInvalidOptions, h)
		}
		h = h.WithZone("").Unmap()
		if seenHost[h] {
			continue
		}
		seenHost[h] = true
		if h.Is4() {
			a := h.As4()
			s.hosts4 = append(s.hosts4, be32(a[:]))
		} else {
			a := h.As16()
			s.hosts6 = append(s.hosts6, [4]uint32{be32(a[0:]), be32(a[4:]), be32(a[8:]), be32(a[12:])})
		}
	}
	if n := len(s.hosts4) + len(s.hosts6); n > MaxHosts {
		return nil, fmt.Errorf("%w: %d distinct hosts, at most %d", ErrInvalidOptions, n, MaxHosts)
	}
	s.hosts = len(seenHost) > 0

	seenIf := make(map[int]bool)
	for _, i := range o.Interfaces {
		if i <= 0 || int64(i) > int64(^uint32(0)>>1) {
			return nil, fmt.Errorf("%w: invalid interface index %d", ErrInvalidOptions, i)
		}
		if !seenIf[i] {
			seenIf[i] = true
			s.ifaces = append(s.ifaces, uint32(i))
		}
	}
	if len(s.ifaces) > MaxInterfaces {
		return nil, fmt.Errorf("%w: %d distinct interfaces, at most %d", ErrInvalidOptions, len(s.ifaces), MaxInterfaces)
	}
	return s, nil
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Core returns the VM-testable program: its input is a packet starting at
// the IP header, and it uses only plain loads, jumps, ALU operations and
// scratch memory (no LoadExtension), so bpf.NewVM can run it. It returns the
// snap length for an accepted packet and 0 otherwise. Options.Interfaces is
// ignored. For zero Options it is 380 instructions.
func Core(o Options) ([]bpf.Instruction, error) {
	s, err := o.spec()
	if err != nil {
		return nil, err
	}
	var b builder
	s.core(&b)
	return b.program()
}

// Kernel returns Core prefixed with the kernel-only prologue: accept only
// ethertypes IPv4 and IPv6 (SKF_AD_PROTOCOL), drop the PACKET_HOST copy of
// every loopback packet and keep the PACKET_OUTGOING one (SKF_AD_HATYPE,
// SKF_AD_PKTTYPE), and, when Options.Interfaces is set, accept only those
// interface indexes (SKF_AD_IFINDEX). It is meant for a SOCK_DGRAM AF_PACKET
// socket, where the filter sees the packet from the IP header on (packet(7)).
// For zero Options it is 388 instructions.
func Kernel(o Options) ([]bpf.Instruction, error) {
	s, err := o.spec()
	if err != nil {
		return nil, err
	}
	var b builder
	s.prologue(&b)
	s.core(&b)
	return b.program()
}

// Assemble returns Kernel(o) assembled for SO_ATTACH_FILTER, for example for
// packet.Config.Filter.
func Assemble(o Options) ([]bpf.RawInstruction, error) {
	prog, err := Kernel(o)
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("filter: assembling program: %w", err)
	}
	return raw, nil
}

// prologue emits the kernel-only checks; it falls through into Core.
func (s *spec) prologue(b *builder) {
	core, reject, loop := b.label(), b.label(), b.label()

	// Ethertype (sll_protocol): only IPv4 and IPv6. Core looks at the
	// version nibble only, which ARP and friends could imitate.
	b.emit(bpf.LoadExtension{Num: bpf.ExtProto})
	b.jumpIf(bpf.JumpEqual, etherTypeIPv4, loop, next)
	b.jumpIf(bpf.JumpEqual, etherTypeIPv6, next, reject)

	// Loopback dedup: every packet on lo is delivered twice, first as
	// PACKET_OUTGOING and then as PACKET_HOST with identical bytes
	// (packet(7)). Keep the earlier outgoing copy, drop PACKET_HOST.
	ifx := core
	if len(s.ifaces) > 0 {
		ifx = b.label()
	}
	b.mark(loop)
	b.emit(bpf.LoadExtension{Num: bpf.ExtLinkLayerType})
	b.jumpIf(bpf.JumpEqual, arphrdLoopback, next, ifx)
	b.emit(bpf.LoadExtension{Num: bpf.ExtType})
	b.jumpIf(bpf.JumpEqual, packetHost, reject, ifx)

	// Interface clause: the ifindex must be listed.
	if len(s.ifaces) > 0 {
		b.mark(ifx)
		b.emit(bpf.LoadExtension{Num: bpf.ExtInterfaceIndex})
		for i, idx := range s.ifaces {
			miss := next
			if i == len(s.ifaces)-1 {
				miss = reject
			}
			b.jumpIf(bpf.JumpEqual, idx, core, miss)
		}
	}
	b.mark(reject)
	b.emit(bpf.RetConstant{Val: 0}) // not IP, loopback duplicate or other interface
	b.mark(core)
}

// core emits the protocol filter. On every path to the TCP block the X
// register holds the offset of the TCP header.
//
// Both IP versions are parsed whatever the host clause lists, because a
// tunnel's outer family need not be its inner one; the host clause of each
// family rejects a TCP segment of a family no listed host belongs to. The
// tunnel section (see tunnels) comes after the TCP block, so the path of a
// TCP segment that is not in a tunnel is the same as without it.
func (s *spec) core(b *builder) {
	v4, v6, tcp := b.label(), b.label(), b.label()
	reject4, reject6 := b.label(), b.label()
	tunnel4, tunnel6 := b.label(), b.label()

	// Version nibble (RFC 791 section 3.1, RFC 8200 section 3).
	b.emit(bpf.LoadAbsolute{Off: 0, Size: 1})                  // A = version << 4 | IHL (or traffic class high bits)
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4}) // A = version
	b.jumpIf(bpf.JumpEqual, 6, v6, next)
	b.jumpIf(bpf.JumpEqual, 4, v4, reject4)

	b.mark(v4)
	s.ipv4(b, tcp, reject4, tunnel4)
	b.mark(v6)
	s.ipv6(b, reject6, tunnel6)
	b.mark(tcp)
	s.tcp(b)
	s.tunnels(b, tunnel4, tunnel6)
}

// ipv4 emits the IPv4 block: protocol, fragment and IHL checks, X = IHL*4,
// then the host clause; it ends with a jump to tcp, followed by the reject
// that its own branches use. Protocols other than TCP go to tunnel.
func (s *spec) ipv4(b *builder, tcp, reject, tunnel label) {
	b.emit(bpf.LoadAbsolute{Off: 9, Size: 1}) // A = protocol
	b.jumpIf(bpf.JumpEqual, protoTCP, next, tunnel)
	// Flags and fragment offset: a non-zero offset means a non-first
	// fragment, which carries no TCP header (RFC 791 section 3.1). First
	// fragments (MF set, offset 0) and DF packets pass.
	b.emit(bpf.LoadAbsolute{Off: 6, Size: 2})
	b.jumpIf(bpf.JumpBitsSet, 0x1fff, reject, next)
	// X = IHL*4, the TCP header offset (0-60, options included).
	b.emit(bpf.LoadMemShift{Off: 0})
	// The IHL trap: IHL < 5 is invalid and would make [x+13] read the IP
	// header or the wrong TCP byte (IHL 0: [13], inside the source address).
	b.emit(bpf.TXA{})
	b.jumpIf(bpf.JumpGreaterOrEqual, ipv4MinHeader, next, reject)
	s.hosts4Clause(b, absolute)
	b.jump(tcp) // IPv6 lies between here and the TCP block
	b.mark(reject)
	b.emit(bpf.RetConstant{Val: 0}) // not TCP, non-first fragment, bad IHL or no listed host
}

// absolute and indirect load a header field at a fixed offset from the
// packet start, or from X.
func absolute(off, size uint32) bpf.Instruction { return bpf.LoadAbsolute{Off: off, Size: int(size)} }
func indirect(off, size uint32) bpf.Instruction { return bpf.LoadIndirect{Off: off, Size: int(size)} }

// hosts4Clause emits the IPv4 host clause, loading the addresses with ld:
// source [12] or destination [16] must be listed. It falls through on a
// match and returns 0 otherwise.
func (s *spec) hosts4Clause(b *builder, ld func(off, size uint32) bpf.Instruction) {
	if !s.hosts {
		return
	}
	match, miss := b.label(), b.label()
	for _, off := range []uint32{12, 16} {
		b.emit(ld(off, 4)) // A = source, then destination address
		for i, h := range s.hosts4 {
			l := next
			if off == 16 && i == len(s.hosts4)-1 {
				l = miss
			}
			b.jumpIf(bpf.JumpEqual, h, match, l)
		}
	}
	if len(s.hosts4) == 0 {
		b.jump(miss) // only IPv6 hosts listed
	}
	b.mark(miss)
	b.emit(bpf.RetConstant{Val: 0}) // no listed host
	b.mark(match)
}

// hosts6Clause emits the IPv6 host clause, loading the addresses with ld:
// source [8:24] or destination [24:40] must equal a listed address,
// compared one 32-bit word at a time. It falls through on a match and
// returns 0 otherwise.
func (s *spec) hosts6Clause(b *builder, ld func(off, size uint32) bpf.Instruction) {
	if !s.hosts {
		return
	}
	match := b.label()
	for _, off := range []uint32{8, 24} {
		for _, h := range s.hosts6 {
			miss := b.label()
			for w := range 4 {
				b.emit(ld(off+4*uint32(w), 4)) // A = address word w
				hit := next
				if w == 3 {
					hit = match
				}
				b.jumpIf(bpf.JumpEqual, h[w], hit, miss)
			}
			b.mark(miss) // the last one falls into the reject below
		}
	}
	b.emit(bpf.RetConstant{Val: 0}) // no listed host
	b.mark(match)
}

// ipv6 emits the IPv6 block: the unrolled extension header walk, then the
// host clause; it falls through into the TCP block. Upper layers other than
// TCP go to tunnel with A = their type and X = their offset.
func (s *spec) ipv6(b *builder, reject, tunnel label) {
	found := b.label()
	// X = offset of the header after the fixed IPv6 header, A = its type.
	b.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: ipv6Header})
	b.emit(bpf.LoadAbsolute{Off: 6, Size: 1}) // A = Next Header
	walk6(b, found, tunnel, reject)
	b.mark(reject)
	b.emit(bpf.RetConstant{Val: 0}) // non-first fragment, chain too long or no listed host
	b.mark(found)
	s.hosts6Clause(b, absolute)
	// Falls through into the TCP block.
}

// walk6 emits the unrolled IPv6 extension header walk. On entry A is the
// type of the header at offset X; at found, X is the offset of the TCP
// header; other upper layers go to other with A = their type and X = their
// offset.
func walk6(b *builder, found, other, reject label) {
	// One level per extension header (RFC 8200 section 4). On entry A is
	// the type of the header at offset X. Each level computes the header's
	// length in A and advances X past it, reading the following type from
	// the header's first byte.
	for range MaxIPv6ExtHeaders {
		opts, ah, frag, tail := b.label(), b.label(), b.label(), b.label()
		b.jumpIf(bpf.JumpEqual, protoTCP, found, next)
		b.jumpIf(bpf.JumpEqual, protoFragment, frag, next)
		b.jumpIf(bpf.JumpEqual, protoAH, ah, next)
		b.jumpIf(bpf.JumpEqual, protoHopByHop, opts, next)
		b.jumpIf(bpf.JumpEqual, protoRouting, opts, next)
		b.jumpIf(bpf.JumpEqual, protoDestOpts, opts, other) // ESP, no next header, UDP, ...

		// Fragment header, 8 octets (RFC 8200 4.5). A non-zero Fragment
		// Offset (bits 0xfff8 of [x+2]) means a non-first fragment, which
		// has no TCP header. Otherwise A is 0 and tail makes (0+2)*4 = 8.
		b.mark(frag)
		b.emit(bpf.LoadIndirect{Off: 2, Size: 2})
		b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xfff8}) // A = fragment offset << 3
		b.jumpIf(bpf.JumpEqual, 0, tail, reject)

		// Authentication header: Payload Len [x+1] is in 4-octet units
		// minus 2 (RFC 4302 section 2.2): length = (len+2)*4.
		b.mark(ah)
		b.emit(bpf.LoadIndirect{Off: 1, Size: 1})
		b.jump(tail)

		// Hop-by-hop, routing, destination options: Hdr Ext Len [x+1] is
		// in 8-octet units not counting the first 8 (RFC 8200 4.3-4.6):
		// length = (len+1)*8 = (2*len+2)*4, finished by tail.
		b.mark(opts)
		b.emit(bpf.LoadIndirect{Off: 1, Size: 1})
		b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 1}) // A = 2*len

		b.mark(tail)
		b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 2})
		b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2}) // A = header length
		// Advance: X += length, A = Next Header [x+0] of the old X. The
		// new offset waits in M[0] while the old X is still needed.
		b.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})          // A = X + length
		b.emit(bpf.StoreScratch{Src: bpf.RegA, N: 0}) // M[0] = offset of the next header
		b.emit(bpf.LoadIndirect{Off: 0, Size: 1})     // A = its type, Next Header at [x+0]
		b.emit(bpf.LoadScratch{Dst: bpf.RegX, N: 0})  // X = M[0]
	}
	// Past MaxIPv6ExtHeaders only TCP itself is acceptable.
	b.jumpIf(bpf.JumpEqual, protoTCP, found, other)
}

// Tunnel protocols, ports and EtherTypes the program looks inside.
const (
	protoIPIP = 4 // IPv4 in IP, RFC 2003
	protoUDP  = 17
	protoIPv6 = 41 // IPv6 in IP, RFC 4213 and RFC 2473
	protoGRE  = 47 // RFC 2784, RFC 2890

	portVXLAN      = 4789 // RFC 7348
	portVXLANLinux = 8472 // the Linux vxlan driver's default
	portGeneve     = 6081 // RFC 8926

	etherTypeVLAN    = 0x8100
	etherTypeTEB     = 0x6558 // Transparent Ethernet Bridging: an Ethernet frame
	etherTypeERSPAN2 = 0x88be // ERSPAN type I and II
	etherTypeERSPAN3 = 0x22eb // ERSPAN type III

	udpHeader      = 8
	vxlanHeader    = 8
	geneveHeader   = 8
	ethernetHeader = 14
)

// Scratch memory words. M[0] is the IPv6 walk's.
const (
	memProto = 1 // the protocol a tunnel header announces
	memFlags = 2 // GRE flags
)

// tunnels emits the tunnel section: it finds the inner IP packet of VXLAN
// (UDP 4789 and 8472), Geneve (UDP 6081), GRE (with key, sequence and
// checksum; IPv4, IPv6, Ethernet and ERSPAN type I-III payloads) and IP in
// IP (protocols 4 and 41, over IPv4 and IPv6), with at
// most one VLAN tag on an inner Ethernet frame, and runs the inner packet
// through the same IP, host and TCP checks as a packet that is not in a
// tunnel. It looks one tunnel deep. tunnel4 is entered from the IPv4 block
// with A = the IP protocol; tunnel6 from the IPv6 walk with A = the upper
// layer type and X = its offset.
func (s *spec) tunnels(b *builder, tunnel4, tunnel6 label) {
	udp, gre, greProto, payload, ether, inner, reject := b.label(), b.label(), b.label(), b.label(), b.label(), b.label(), b.label()

	// IPv4: the same fragment and IHL checks as for TCP, X = IHL*4.
	b.mark(tunnel4)
	u4, g4, i4 := b.label(), b.label(), b.label()
	b.jumpIf(bpf.JumpEqual, protoUDP, u4, next)
	b.jumpIf(bpf.JumpEqual, protoGRE, g4, next)
	b.jumpIf(bpf.JumpEqual, protoIPIP, i4, next)
	b.jumpIf(bpf.JumpEqual, protoIPv6, i4, reject)
	for _, t := range []struct{ from, to label }{{u4, udp}, {g4, gre}, {i4, inner}} {
		b.mark(t.from)
		b.emit(bpf.LoadAbsolute{Off: 6, Size: 2})
		b.jumpIf(bpf.JumpBitsSet, 0x1fff, reject, next)
		b.emit(bpf.LoadMemShift{Off: 0})
		b.emit(bpf.TXA{})
		b.jumpIf(bpf.JumpGreaterOrEqual, ipv4MinHeader, t.to, reject)
	}

	// IPv6: the walk left A = upper layer, X = its offset.
	b.mark(tunnel6)
	b.jumpIf(bpf.JumpEqual, protoUDP, udp, next)
	b.jumpIf(bpf.JumpEqual, protoGRE, gre, next)
	b.jumpIf(bpf.JumpEqual, protoIPIP, inner, next)
	b.jumpIf(bpf.JumpEqual, protoIPv6, inner, reject)

	// UDP: the destination port says which tunnel (X = UDP header).
	vx, gen := b.label(), b.label()
	b.mark(udp)
	b.emit(bpf.LoadIndirect{Off: 2, Size: 2}) // A = destination port
	b.jumpIf(bpf.JumpEqual, portVXLAN, vx, next)
	b.jumpIf(bpf.JumpEqual, portVXLANLinux, vx, next)
	b.jumpIf(bpf.JumpEqual, portGeneve, gen, reject)

	// VXLAN (RFC 7348 section 5): the I flag, then an Ethernet frame.
	b.mark(vx)
	b.emit(bpf.LoadIndirect{Off: udpHeader, Size: 1})
	b.jumpIf(bpf.JumpBitsSet, 0x08, next, reject)
	b.emit(bpf.TXA{})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: udpHeader + vxlanHeader})
	b.emit(bpf.TAX{})
	b.jump(ether)

	// Geneve (RFC 8926 section 3.4): version 0, options length in 4-byte
	// words, protocol type.
	b.mark(gen)
	b.emit(bpf.LoadIndirect{Off: udpHeader + 2, Size: 2})
	b.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProto})
	b.emit(bpf.LoadIndirect{Off: udpHeader, Size: 1})
	b.jumpIf(bpf.JumpBitsSet, 0xc0, reject, next)
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x3f})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: udpHeader + geneveHeader})
	b.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	b.emit(bpf.TAX{})
	b.jump(payload)

	// GRE (RFC 2784, RFC 2890): version 0, no routing (RFC 1701); the
	// header is 4 bytes plus 4 for each of checksum, key and sequence.
	b.mark(gre)
	b.emit(bpf.LoadIndirect{Off: 1, Size: 1})
	b.jumpIf(bpf.JumpBitsSet, 0x07, reject, next)
	b.emit(bpf.LoadIndirect{Off: 2, Size: 2})
	b.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProto})
	b.emit(bpf.LoadIndirect{Off: 0, Size: 1})
	b.jumpIf(bpf.JumpBitsSet, 0x4f, reject, next) // routing, strict source route, recursion
	b.emit(bpf.StoreScratch{Src: bpf.RegA, N: memFlags})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xb0}) // checksum, key, sequence
	l4, l8, l12 := b.label(), b.label(), b.label()
	b.jumpIf(bpf.JumpEqual, 0, l4, next)
	b.jumpIf(bpf.JumpEqual, 0x80, l8, next)
	b.jumpIf(bpf.JumpEqual, 0x20, l8, next)
	b.jumpIf(bpf.JumpEqual, 0x10, l8, next)
	b.jumpIf(bpf.JumpEqual, 0xb0, next, l12)
	for _, t := range []struct {
		l label
		n uint32
	}{{next, 16}, {l12, 12}, {l8, 8}, {l4, 4}} {
		if t.l != next {
			b.mark(t.l)
		}
		b.emit(bpf.TXA{})
		b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: t.n})
		b.emit(bpf.TAX{})
		if t.n != 4 {
			b.jump(greProto)
		}
	}

	// The payload of GRE: M[1] = its protocol, M[2] the GRE flags, X =
	// its start. Only GRE carries ERSPAN, and only this path stores M[2]
	// (the kernel rejects a program that may read scratch memory that no
	// path to the load has written).
	er2, er3 := b.label(), b.label()
	b.mark(greProto)
	b.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memProto})
	b.jumpIf(bpf.JumpEqual, etherTypeERSPAN2, er2, next)
	b.jumpIf(bpf.JumpEqual, etherTypeERSPAN3, er3, payload)
	// ERSPAN type II has an 8-byte header and a GRE sequence number; type
	// I has neither (draft-foschiano-erspan section 4.1).
	b.mark(er2)
	b.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memFlags})
	b.jumpIf(bpf.JumpBitsSet, 0x10, next, ether)
	b.emit(bpf.TXA{})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 8})
	b.emit(bpf.TAX{})
	b.jump(ether)
	// ERSPAN type III: 12 bytes, 8 more when the O bit says a platform
	// specific subheader follows (section 4.2).
	b.mark(er3)
	b.emit(bpf.LoadIndirect{Off: 11, Size: 1})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x01})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 3})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 12})
	b.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	b.emit(bpf.TAX{})
	b.jump(ether)

	// The payload of Geneve or GRE: M[1] = its protocol, X = its start.
	b.mark(payload)
	b.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memProto})
	b.jumpIf(bpf.JumpEqual, etherTypeIPv4, inner, next)
	b.jumpIf(bpf.JumpEqual, etherTypeIPv6, inner, next)
	b.jumpIf(bpf.JumpEqual, etherTypeTEB, ether, reject)

	// Ethernet (X = frame start): IPv4 or IPv6, behind at most one tag.
	eth, tagged := b.label(), b.label()
	b.mark(ether)
	b.emit(bpf.LoadIndirect{Off: 12, Size: 2})
	b.jumpIf(bpf.JumpEqual, etherTypeIPv4, eth, next)
	b.jumpIf(bpf.JumpEqual, etherTypeIPv6, eth, next)
	b.jumpIf(bpf.JumpEqual, etherTypeVLAN, next, reject)
	b.emit(bpf.LoadIndirect{Off: 16, Size: 2})
	b.jumpIf(bpf.JumpEqual, etherTypeIPv4, tagged, next)
	b.jumpIf(bpf.JumpEqual, etherTypeIPv6, tagged, reject)
	b.mark(tagged)
	b.emit(bpf.TXA{})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 4})
	b.emit(bpf.TAX{})
	b.mark(eth)
	b.emit(bpf.TXA{})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: ethernetHeader})
	b.emit(bpf.TAX{})

	// The inner IP packet at X.
	b.mark(inner)
	s.innerIP(b, reject)
	b.mark(reject)
	b.emit(bpf.RetConstant{Val: 0}) // not a tunnel, or nothing acceptable in it
}

// innerIP emits the checks of the IPv4 and IPv6 blocks for the packet at
// X, ending with its own copy of the TCP block.
func (s *spec) innerIP(b *builder, reject label) {
	in4, in6, tcp := b.label(), b.label(), b.label()
	b.emit(bpf.LoadIndirect{Off: 0, Size: 1})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	b.jumpIf(bpf.JumpEqual, 4, in4, next)
	b.jumpIf(bpf.JumpEqual, 6, in6, reject)

	b.mark(in4)
	b.emit(bpf.LoadIndirect{Off: 9, Size: 1})
	b.jumpIf(bpf.JumpEqual, protoTCP, next, reject)
	b.emit(bpf.LoadIndirect{Off: 6, Size: 2})
	b.jumpIf(bpf.JumpBitsSet, 0x1fff, reject, next)
	s.hosts4Clause(b, indirect)
	// X += IHL*4, with the IHL trap.
	b.emit(bpf.LoadIndirect{Off: 0, Size: 1})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
	b.jumpIf(bpf.JumpGreaterOrEqual, ipv4MinHeader, next, reject)
	b.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	b.emit(bpf.TAX{})
	b.jump(tcp)

	b.mark(in6)
	s.hosts6Clause(b, indirect)
	b.emit(bpf.LoadIndirect{Off: 6, Size: 1})
	b.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProto})
	b.emit(bpf.TXA{})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: ipv6Header})
	b.emit(bpf.TAX{})
	b.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memProto})
	walk6(b, tcp, reject, reject)

	b.mark(tcp)
	s.tcp(b)
}

// tcp emits the TCP block: flags, then the port clause, then the verdicts.
// X holds the TCP header offset.
func (s *spec) tcp(b *builder) {
	accept, reject := b.label(), b.label()
	flagsOK := accept
	if len(s.ports) > 0 {
		flagsOK = b.label()
	}

	// Flags byte (RFC 9293 section 3.1). Loading it also proves that the
	// packet holds 14 bytes of TCP header: shorter ones end here with 0.
	b.emit(bpf.LoadIndirect{Off: tcpFlagsOff, Size: 1})
	if s.syn || s.synack {
		b.jumpIf(bpf.JumpBitsSet, tcpRST, flagsOK, next)
		b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: tcpSYN | tcpACK})
		if s.syn && s.synack {
			// SYN without ACK (the connection attempt a reset may
			// answer) or with it (the answer).
			b.jumpIf(bpf.JumpEqual, tcpSYN, flagsOK, next)
			b.jumpIf(bpf.JumpEqual, tcpSYN|tcpACK, flagsOK, reject)
		} else if s.syn {
			b.jumpIf(bpf.JumpEqual, tcpSYN, flagsOK, reject)
		} else {
			b.jumpIf(bpf.JumpEqual, tcpSYN|tcpACK, flagsOK, reject)
		}
	} else {
		b.jumpIf(bpf.JumpBitsSet, tcpRST, flagsOK, reject)
	}

	if len(s.ports) > 0 {
		// Port clause: source [x+0] or destination [x+2] must be listed.
		b.mark(flagsOK)
		for _, off := range []uint32{0, 2} {
			b.emit(bpf.LoadIndirect{Off: off, Size: 2}) // A = source, then destination port
			for i, p := range s.ports {
				miss := next
				if off == 2 && i == len(s.ports)-1 {
					miss = reject
				}
				b.jumpIf(bpf.JumpEqual, uint32(p), accept, miss)
			}
		}
	}
	b.mark(accept)
	b.emit(bpf.RetConstant{Val: s.snaplen}) // a reset (or SYN) we want: keep snaplen bytes
	b.mark(reject)
	b.emit(bpf.RetConstant{Val: 0}) // other flags or ports
}
