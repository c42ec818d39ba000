package sniff

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Errors returned by Segment.Decode. They are returned bare, never wrapped,
// so that a flood of bad packets costs no allocation.
var (
	ErrTruncated = errors.New("packet truncated")
	ErrNotIP     = errors.New("not an IPv4 or IPv6 packet")
	ErrNotTCP    = errors.New("not a TCP segment")
	ErrFragment  = errors.New("non-first IP fragment")
	ErrMalformed = errors.New("malformed header")
)

// Family is the IP version of a segment. The zero value is invalid.
//
//enumcheck:exhaustive
type Family uint8

// Families.
const (
	_ Family = iota
	IPv4
	IPv6
)

// String returns "ipv4" or "ipv6", the JSON spelling.
func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return "unknown"
}

// Header offsets and sizes (RFC 791, RFC 8200, RFC 9293).
const (
	ipv4MinimumSize    = 20
	ipv4TOSOffset      = 1
	ipv4TotalLenOffset = 2
	ipv4IDOffset       = 4
	ipv4FragOffset     = 6
	ipv4TTLOffset      = 8
	ipv4ProtocolOffset = 9
	ipv4SrcOffset      = 12
	ipv4DstOffset      = 16
	ipv4FlagDF         = 0x4000
	ipv4FragMask       = 0x1fff

	ipv6FixedSize      = 40
	ipv6PayloadOffset  = 4
	ipv6NextHdrOffset  = 6
	ipv6HopLimitOffset = 7
	ipv6SrcOffset      = 8
	ipv6DstOffset      = 24

	// IPv6 extension headers walked to find TCP (RFC 8200 section 4, RFC 4302).
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6AH       = 51
	ipv6DestOpts = 60
	// maxExtHeaders bounds the walk, as the BPF program does; a longer chain
	// is treated as not TCP.
	maxExtHeaders = 8

	protoTCP = 6

	tcpMinimumSize   = 20
	tcpSrcPortOffset = 0
	tcpDstPortOffset = 2
	tcpSeqOffset     = 4
	tcpAckOffset     = 8
	tcpDataOffset    = 12
	tcpFlagsOffset   = 13
	tcpWindowOffset  = 14
	tcpUrgentOffset  = 18
)

// TCPFlags is the TCP flags byte (RFC 9293 section 3.1).
type TCPFlags uint8

// TCP flag bits.
const (
	FlagFIN TCPFlags = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

// Has reports whether all bits of o are set in f.
func (f TCPFlags) Has(o TCPFlags) bool { return f&o == o }

// tcpdumpOrder is the order in which tcpdump prints flags (print-tcp.c
// tcp_flag_values): FIN, SYN, RST, PSH, ACK as ".", URG, ECE, CWR.
var tcpdumpOrder = [...]struct {
	flag TCPFlags
	char byte
}{{FlagFIN, 'F'}, {FlagSYN, 'S'}, {FlagRST, 'R'}, {FlagPSH, 'P'}, {FlagACK, '.'}, {FlagURG, 'U'}, {FlagECE, 'E'}, {FlagCWR, 'W'}}

// AppendTo appends the flags in tcpdump notation ("R.", "FR.", "S", and
// "none" for no flags) to b.
func (f TCPFlags) AppendTo(b []byte) []byte {
	if f == 0 {
		return append(b, "none"...)
	}
	for _, t := range tcpdumpOrder {
		if f&t.flag != 0 {
			b = append(b, t.char)
		}
	}
	return b
}

// String returns the flags in tcpdump notation.
func (f TCPFlags) String() string { return string(f.AppendTo(make([]byte, 0, 8))) }

// Segment is a decoded TCP segment with the IP fields that tell how a reset
// was made (KERNEL-NOTES facts 10, 11 and 13). Payload aliases the buffer
// passed to Decode.
type Segment struct {
	Family   Family
	Src, Dst netip.AddrPort
	Seq, Ack uint32
	Flags    TCPFlags
	Window   uint16
	Urgent   uint16

	// TTL is the IPv4 TTL or the IPv6 hop limit; TOS is the IPv4 TOS byte or
	// the IPv6 traffic class.
	TTL uint8
	TOS uint8
	// IPID and DF are IPv4 only; FlowLabel is IPv6 only.
	IPID      uint16
	DF        bool
	FlowLabel uint32

	// TCPHeaderLen is the TCP data offset in bytes (20 to 60).
	TCPHeaderLen int
	// PayloadLen is the TCP payload length the IP header announces, as
	// tcpdump prints it ("length N"); Payload holds the captured part of it,
	// which may be shorter when the capture was truncated.
	PayloadLen int
	Payload    []byte
	// TCPOffset is the offset of the TCP header in the decoded packet.
	TCPOffset int

	// ICMP is set (ICMP.Valid) when the packet is an ICMP or ICMPv6 error
	// about a TCP segment (filter.Options.Failures). The fields above then
	// describe the quoted segment, the one the error is about: Family,
	// Src, Dst and Seq always; Ack, Flags and Window when the error quotes
	// enough of it (else 0); TTL and TOS are the error's own; TCPHeaderLen,
	// PayloadLen and Payload are zero.
	ICMP ICMPError
}

// Decode parses b, an IPv4 or IPv6 packet starting at its IP header, into s.
// It returns one of the package's sentinel errors when b is not a complete
// TCP header inside an IP packet; s is then in an unspecified state. Decode
// never allocates and never reads outside b.
func (s *Segment) Decode(b []byte) error {
	b = b[:len(b):len(b)]
	if len(b) == 0 {
		return ErrTruncated
	}
	var (
		off int // start of the TCP header
		end int // end of the IP packet (may exceed len(b) when truncated)
	)
	switch b[0] >> 4 {
	case 4:
		if len(b) < ipv4MinimumSize {
			return ErrTruncated
		}
		ihl := int(b[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[ipv4TotalLenOffset:]))
		if ihl < ipv4MinimumSize || total < ihl {
			return ErrMalformed
		}
		if len(b) < ihl {
			return ErrTruncated
		}
		if b[ipv4ProtocolOffset] != protoTCP {
			if b[ipv4ProtocolOffset] == protoICMP {
				return s.decodeICMP(b, ihl)
			}
			return ErrNotTCP
		}
		frag := binary.BigEndian.Uint16(b[ipv4FragOffset:])
		if frag&ipv4FragMask != 0 {
			return ErrFragment
		}
		s.Family = IPv4
		s.TOS = b[ipv4TOSOffset]
		s.TTL = b[ipv4TTLOffset]
		s.IPID = binary.BigEndian.Uint16(b[ipv4IDOffset:])
		s.DF = frag&ipv4FlagDF != 0
		s.FlowLabel = 0
		src := netip.AddrFrom4([4]byte(b[ipv4SrcOffset : ipv4SrcOffset+4]))
		dst := netip.AddrFrom4([4]byte(b[ipv4DstOffset : ipv4DstOffset+4]))
		s.Src, s.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		off, end = ihl, total
	case 6:
		if len(b) < ipv6FixedSize {
			return ErrTruncated
		}
		s.Family = IPv6
		s.TOS = b[0]<<4 | b[1]>>4
		s.TTL = b[ipv6HopLimitOffset]
		s.IPID, s.DF = 0, false
		s.FlowLabel = binary.BigEndian.Uint32(b[0:4]) & 0x000fffff
		src := netip.AddrFrom16([16]byte(b[ipv6SrcOffset : ipv6SrcOffset+16]))
		dst := netip.AddrFrom16([16]byte(b[ipv6DstOffset : ipv6DstOffset+16]))
		s.Src, s.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		end = ipv6FixedSize + int(binary.BigEndian.Uint16(b[ipv6PayloadOffset:]))
		if end == ipv6FixedSize {
			// A zero payload length means a jumbogram (RFC 2675) or a
			// capture that lost it; trust the captured length.
			end = len(b)
		}
		next, o, err := walkIPv6(b)
		if err != nil {
			return err
		}
		if next != protoTCP {
			if next == protoICMPv6 {
				return s.decodeICMP(b, o)
			}
			return ErrNotTCP
		}
		off = o
	default:
		return ErrNotIP
	}

	if len(b)-off < tcpMinimumSize {
		return ErrTruncated
	}
	tcp := b[off:]
	hlen := int(tcp[tcpDataOffset]>>4) * 4
	if hlen < tcpMinimumSize {
		return ErrMalformed
	}
	if len(tcp) < hlen {
		return ErrTruncated
	}
	if end < off+hlen {
		// The IP length field ends inside the TCP header.
		return ErrMalformed
	}
	s.Src = netip.AddrPortFrom(s.Src.Addr(), binary.BigEndian.Uint16(tcp[tcpSrcPortOffset:]))
	s.Dst = netip.AddrPortFrom(s.Dst.Addr(), binary.BigEndian.Uint16(tcp[tcpDstPortOffset:]))
	s.Seq = binary.BigEndian.Uint32(tcp[tcpSeqOffset:])
	s.Ack = binary.BigEndian.Uint32(tcp[tcpAckOffset:])
	s.Flags = TCPFlags(tcp[tcpFlagsOffset])
	s.Window = binary.BigEndian.Uint16(tcp[tcpWindowOffset:])
	s.Urgent = binary.BigEndian.Uint16(tcp[tcpUrgentOffset:])
	s.TCPHeaderLen = hlen
	s.TCPOffset = off
	s.ICMP.From = netip.Addr{} // not an ICMP error
	s.PayloadLen = end - off - hlen
	// The captured payload stops at the IP length (Ethernet padding is not
	// payload) or at the end of the capture, whichever comes first.
	capEnd := min(end, len(b))
	s.Payload = b[off+hlen : capEnd]
	return nil
}

// walkIPv6 follows the IPv6 extension header chain of b and returns the
// upper-layer protocol and its offset. Non-first fragments have no upper
// layer header and are reported as ErrFragment.
func walkIPv6(b []byte) (next uint8, off int, err error) {
	next, off = b[ipv6NextHdrOffset], ipv6FixedSize
	for range maxExtHeaders {
		switch next {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts:
			if len(b)-off < 8 {
				return 0, 0, ErrTruncated
			}
			next, off = b[off], off+(int(b[off+1])+1)*8
		case ipv6Fragment:
			if len(b)-off < 8 {
				return 0, 0, ErrTruncated
			}
			if binary.BigEndian.Uint16(b[off+2:])&0xfff8 != 0 {
				return 0, 0, ErrFragment
			}
			next, off = b[off], off+8
		case ipv6AH:
			if len(b)-off < 8 {
				return 0, 0, ErrTruncated
			}
			next, off = b[off], off+(int(b[off+1])+2)*4
		default:
			return next, off, nil
		}
	}
	return 0, 0, ErrNotTCP
}
