package filter_test

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// Test packets start at the IP header, as a SOCK_DGRAM packet socket sees
// them. Addresses are documentation prefixes (RFC 5737, RFC 3849) so that a
// namespace receiving them in the integration tests never answers.
var (
	src4 = netip.MustParseAddr("192.0.2.1")
	dst4 = netip.MustParseAddr("192.0.2.2")
	src6 = netip.MustParseAddr("2001:db8::1")
	dst6 = netip.MustParseAddr("2001:db8::2")
)

const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagPSH = 0x08
	flagACK = 0x10
)

// Upper-layer and extension header numbers (IANA protocol numbers).
const (
	nhHopByHop = 0
	nhICMP     = 1
	nhIPIP     = 4
	nhTCP      = 6
	nhUDP      = 17
	nhGRE      = 47
	nhIPv6     = 41
	nhRouting  = 43
	nhFragment = 44
	nhESP      = 50
	nhAH       = 51
	nhICMPv6   = 58
	nhNoNext   = 59
	nhDestOpts = 60
)

// EtherTypes of the test packets.
const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherARP  = 0x0806
)

var be = binary.BigEndian

// tcpHeader returns a TCP header (RFC 9293 section 3.1) with optLen bytes
// of NOP options (a multiple of 4). Sequence and acknowledgment numbers are
// chosen without bit 2 set in any byte, so that a filter reading the flags
// from the wrong offset does not accidentally see RST.
func tcpHeader(sport, dport uint16, flags byte, optLen int) []byte {
	h := make([]byte, 20+optLen)
	be.PutUint16(h[0:], sport)
	be.PutUint16(h[2:], dport)
	be.PutUint32(h[4:], 0x11223300) // sequence number
	be.PutUint32(h[8:], 0x01020300) // acknowledgment number
	h[12] = byte(len(h)/4) << 4     // data offset
	h[13] = flags
	for i := 20; i < len(h); i++ {
		h[i] = 1 // NOP
	}
	return h
}

// ipv4Packet returns an IPv4 packet (RFC 791) with the given options (a
// multiple of 4 bytes) and a valid header checksum.
func ipv4Packet(src, dst netip.Addr, proto byte, options, payload []byte) []byte {
	hl := 20 + len(options)
	b := make([]byte, hl+len(payload))
	b[0] = 0x40 | byte(hl/4)
	be.PutUint16(b[2:], uint16(len(b)))
	be.PutUint16(b[4:], 0x1234) // identification
	b[8] = 64                   // TTL
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], options)
	copy(b[hl:], payload)
	var sum uint32
	for i := 0; i < hl; i += 2 {
		sum += uint32(be.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	be.PutUint16(b[10:], ^uint16(sum))
	return b
}

// ext6 builds one IPv6 extension header given the type of the header that
// follows it, returning its own type and bytes.
type ext6 func(next byte) (typ byte, hdr []byte)

// optsExt is a hop-by-hop, routing or destination options header of
// (units+1)*8 bytes (RFC 8200 4.3-4.6), padded with one PadN option.
func optsExt(typ byte, units int) ext6 {
	return func(next byte) (byte, []byte) {
		h := make([]byte, (units+1)*8)
		h[0], h[1] = next, byte(units)
		h[2], h[3] = 1, byte(len(h)-4) // PadN
		if typ == nhRouting {
			h[2], h[3] = 4, 0 // routing type 4 (SRH-like), segments left 0
		}
		return typ, h
	}
}

// fragExt is a fragment header (RFC 8200 4.5); offset is in 8-octet units.
func fragExt(offset uint16, more bool) ext6 {
	return func(next byte) (byte, []byte) {
		h := make([]byte, 8)
		h[0] = next
		v := offset << 3
		if more {
			v |= 1
		}
		be.PutUint16(h[2:], v)
		be.PutUint32(h[4:], 0xcafe) // identification
		return nhFragment, h
	}
}

// ahExt is an authentication header (RFC 4302) with a Payload Len of
// payloadLen, that is (payloadLen+2)*4 bytes.
func ahExt(payloadLen byte) ext6 {
	return func(next byte) (byte, []byte) {
		h := make([]byte, (int(payloadLen)+2)*4)
		h[0], h[1] = next, payloadLen
		be.PutUint32(h[4:], 0x100) // SPI
		be.PutUint32(h[8:], 1)     // sequence number
		return nhAH, h
	}
}

// ipv6Packet returns an IPv6 packet (RFC 8200) with the given extension
// headers, in order, followed by an upper-layer header of type upper.
func ipv6Packet(src, dst netip.Addr, exts []ext6, upper byte, payload []byte) []byte {
	nh := upper
	rest := slices.Clone(payload)
	for _, e := range slices.Backward(exts) {
		var h []byte
		nh, h = e(nh)
		rest = append(h, rest...)
	}
	b := make([]byte, 40, 40+len(rest))
	b[0] = 0x60
	be.PutUint16(b[4:], uint16(len(rest)))
	b[6] = nh
	b[7] = 64 // hop limit
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, rest...)
}

// Tunnel headers (RFC 7348, RFC 8926, RFC 2784/2890, draft-foschiano-erspan),
// each followed by its payload.

func udpHeader(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8, 8+len(payload))
	be.PutUint16(h[0:], sport)
	be.PutUint16(h[2:], dport)
	be.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

// etherFrame is an Ethernet frame; tags are 802.1Q/802.1ad tags (TPID,
// TCI) outermost first.
func etherFrame(et uint16, payload []byte, tags ...[2]uint16) []byte {
	h := []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2}
	for _, t := range tags {
		h = be.AppendUint16(h, t[0])
		h = be.AppendUint16(h, t[1])
	}
	h = be.AppendUint16(h, et)
	return append(h, payload...)
}

func vxlanHeader(flags byte, vni uint32, frame []byte) []byte {
	h := []byte{flags, 0, 0, 0}
	h = be.AppendUint32(h, vni<<8)
	return append(h, frame...)
}

func geneveHeader(first byte, proto uint16, payload []byte) []byte {
	h := []byte{first, 0}
	h = be.AppendUint16(h, proto)
	h = be.AppendUint32(h, 77<<8)
	h = append(h, make([]byte, int(first&0x3f)*4)...) // options
	return append(h, payload...)
}

// greHeader is a GRE header with the optional fields its flags announce.
func greHeader(flags, version byte, proto uint16, payload []byte) []byte {
	h := []byte{flags, version}
	h = be.AppendUint16(h, proto)
	for _, bit := range []byte{0x80, 0x20, 0x10} {
		if flags&bit != 0 {
			h = be.AppendUint32(h, 0x01020300)
		}
	}
	return append(h, payload...)
}

func erspan2Header(frame []byte) []byte {
	return append([]byte{0x10, 0x01, 0x00, 0x64, 0, 0, 0, 0}, frame...)
}

func erspan3Header(sub bool, frame []byte) []byte {
	h := []byte{0x20, 0x01, 0x00, 0x64, 0, 0, 0, 1, 0, 0, 0, 0}
	if sub {
		h[11] = 1
		h = append(h, make([]byte, 8)...)
	}
	return append(h, frame...)
}
