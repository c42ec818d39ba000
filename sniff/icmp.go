package sniff

import (
	"encoding/binary"
	"net/netip"
)

// ICMP and ICMPv6 (RFC 792, RFC 4443) values the decoder knows.
const (
	protoICMP   = 1
	protoICMPv6 = 58

	icmpHeaderSize = 8 // type, code, checksum, 4 bytes unused or MTU, then the quoted packet

	ICMPDestUnreachable  = 3  // ICMP type 3
	ICMPTimeExceeded     = 11 // ICMP type 11
	ICMP6DestUnreachable = 1  // ICMPv6 type 1
	ICMP6TimeExceeded    = 3  // ICMPv6 type 3
)

// ICMPError is an ICMP or ICMPv6 error about a TCP segment: who sent it
// (the destination host or a router on the way), to whom, and why.
type ICMPError struct {
	// From sent the error; To received it (normally the quoted segment's
	// sender). From is the zero Addr when the packet is not an error.
	From, To   netip.Addr
	Type, Code uint8
	// V6 says the error is ICMPv6 (Type and Code are RFC 4443's).
	V6 bool
}

// Valid reports whether the segment came quoted in an ICMP error.
func (i *ICMPError) Valid() bool { return i.From.IsValid() }

// decodeICMP decodes b, an ICMP (IPv4) or ICMPv6 packet whose ICMP header
// starts at off, into s: the error's type and code, and the TCP segment it
// quotes. It never allocates.
func (s *Segment) decodeICMP(b []byte, off int) error {
	v6 := b[0]>>4 == 6
	if !v6 && binary.BigEndian.Uint16(b[ipv4FragOffset:])&ipv4FragMask != 0 {
		return ErrFragment
	}
	if len(b) < off+icmpHeaderSize {
		return ErrTruncated
	}
	typ, code := b[off], b[off+1]
	switch {
	case !v6 && (typ == ICMPDestUnreachable || typ == ICMPTimeExceeded):
	case v6 && (typ == ICMP6DestUnreachable || typ == ICMP6TimeExceeded):
	default:
		return ErrNotTCP
	}
	var from, to netip.Addr
	if v6 {
		s.TOS = b[0]<<4 | b[1]>>4
		s.TTL = b[ipv6HopLimitOffset]
		from = netip.AddrFrom16([16]byte(b[ipv6SrcOffset : ipv6SrcOffset+16]))
		to = netip.AddrFrom16([16]byte(b[ipv6DstOffset : ipv6DstOffset+16]))
	} else {
		s.TOS = b[ipv4TOSOffset]
		s.TTL = b[ipv4TTLOffset]
		from = netip.AddrFrom4([4]byte(b[ipv4SrcOffset : ipv4SrcOffset+4]))
		to = netip.AddrFrom4([4]byte(b[ipv4DstOffset : ipv4DstOffset+4]))
	}

	// The quoted packet: its IP header, then at least 8 bytes of TCP
	// (ports and sequence number).
	q := b[off+icmpHeaderSize:]
	var tcp int
	switch {
	case len(q) >= ipv4MinimumSize && q[0]>>4 == 4 && !v6:
		ihl := int(q[0]&0x0f) * 4
		if ihl < ipv4MinimumSize || len(q) < ihl {
			return ErrMalformed
		}
		if q[ipv4ProtocolOffset] != protoTCP {
			return ErrNotTCP
		}
		if binary.BigEndian.Uint16(q[ipv4FragOffset:])&ipv4FragMask != 0 {
			return ErrFragment
		}
		s.Family = IPv4
		s.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(q[ipv4SrcOffset:ipv4SrcOffset+4])), 0)
		s.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(q[ipv4DstOffset:ipv4DstOffset+4])), 0)
		tcp = ihl
	case len(q) >= ipv6FixedSize && q[0]>>4 == 6 && v6:
		next, o, err := walkIPv6(q)
		if err != nil {
			return err
		}
		if next != protoTCP {
			return ErrNotTCP
		}
		s.Family = IPv6
		s.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(q[ipv6SrcOffset:ipv6SrcOffset+16])), 0)
		s.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(q[ipv6DstOffset:ipv6DstOffset+16])), 0)
		tcp = o
	default:
		return ErrTruncated
	}
	// The quote is cut short by design (RFC 792: the header and 8 bytes):
	// an extension chain can point past its end.
	if tcp > len(q) || len(q)-tcp < 8 {
		return ErrTruncated
	}
	t := q[tcp:]
	s.Src = netip.AddrPortFrom(s.Src.Addr(), binary.BigEndian.Uint16(t[tcpSrcPortOffset:]))
	s.Dst = netip.AddrPortFrom(s.Dst.Addr(), binary.BigEndian.Uint16(t[tcpDstPortOffset:]))
	s.Seq = binary.BigEndian.Uint32(t[tcpSeqOffset:])
	s.Ack, s.Flags, s.Window, s.Urgent = 0, 0, 0, 0
	if len(t) >= tcpFlagsOffset+1 {
		s.Flags = TCPFlags(t[tcpFlagsOffset])
	}
	if len(t) >= tcpAckOffset+4 && s.Flags.Has(FlagACK) {
		s.Ack = binary.BigEndian.Uint32(t[tcpAckOffset:])
	}
	if len(t) >= tcpWindowOffset+2 {
		s.Window = binary.BigEndian.Uint16(t[tcpWindowOffset:])
	}
	s.IPID, s.DF, s.FlowLabel = 0, false, 0
	s.TCPHeaderLen, s.PayloadLen, s.Payload = 0, 0, nil
	s.TCPOffset = off + icmpHeaderSize + tcp
	s.ICMP = ICMPError{From: from, To: to, Type: typ, Code: code, V6: v6}
	return nil
}

// Words for ICMP codes (RFC 792, RFC 1812 section 5.2.7.1, RFC 4443).
var (
	icmpUnreachCodes = [...]string{
		0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
		4: "fragmentation needed", 5: "source route failed", 6: "destination network unknown",
		7: "destination host unknown", 8: "source host isolated", 9: "network administratively prohibited",
		10: "host administratively prohibited", 11: "net unreachable for TOS", 12: "host unreachable for TOS",
		13: "administratively prohibited", 14: "host precedence violation", 15: "precedence cutoff in effect",
	}
	icmp6UnreachCodes = [...]string{
		0: "no route to destination", 1: "administratively prohibited", 2: "beyond scope of source address",
		3: "address unreachable", 4: "port unreachable", 5: "source address failed ingress/egress policy",
		6: "reject route to destination",
	}
)

// String says the error's type and code in words, e.g. "port unreachable"
// or "time exceeded in transit".
func (i *ICMPError) String() string {
	switch {
	case !i.V6 && i.Type == ICMPDestUnreachable && int(i.Code) < len(icmpUnreachCodes):
		return icmpUnreachCodes[i.Code]
	case i.V6 && i.Type == ICMP6DestUnreachable && int(i.Code) < len(icmp6UnreachCodes):
		return icmp6UnreachCodes[i.Code]
	case !i.V6 && i.Type == ICMPTimeExceeded, i.V6 && i.Type == ICMP6TimeExceeded:
		if i.Code == 1 {
			return "fragment reassembly time exceeded"
		}
		return "time exceeded in transit"
	}
	return "destination unreachable"
}

// ErrorKind sorts an ICMP error by what it means for the connection.
//
//enumcheck:exhaustive
type ErrorKind uint8

// ErrorKinds.
const (
	// ErrorOther: fragmentation needed, source route failed and the
	// like: not a refusal of the connection.
	ErrorOther ErrorKind = iota
	// ErrorPort: nothing listens there (ICMP port unreachable), a
	// firewall's default reject.
	ErrorPort
	// ErrorProhibited: a firewall or policy refused it
	// (administratively prohibited, the ICMPv6 ingress/egress policy).
	ErrorProhibited
	// ErrorNoRoute: net or host unreachable, no route, a reject route,
	// the address did not answer neighbour discovery, time exceeded.
	ErrorNoRoute
)

// Kind says what the error means for the connection.
func (i *ICMPError) Kind() ErrorKind {
	if i.V6 {
		switch {
		case i.Type == ICMP6TimeExceeded:
			return ErrorNoRoute
		case i.Code == 4:
			return ErrorPort
		case i.Code == 1 || i.Code == 5:
			return ErrorProhibited
		case i.Code == 0 || i.Code == 2 || i.Code == 3 || i.Code == 6:
			return ErrorNoRoute
		}
		return ErrorOther
	}
	switch {
	case i.Type == ICMPTimeExceeded:
		return ErrorNoRoute
	case i.Code == 3:
		return ErrorPort
	case i.Code == 9 || i.Code == 10 || i.Code == 13:
		return ErrorProhibited
	case i.Code == 0 || i.Code == 1 || i.Code == 6 || i.Code == 7 || i.Code == 11 || i.Code == 12:
		return ErrorNoRoute
	}
	return ErrorOther
}
