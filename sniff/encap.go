package sniff

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"

	"github.com/rstwatch/rstwatch/sniff/savefile"
)

// ErrEncapDepth is returned by Encap.Peel for a packet nested deeper than
// MaxEncap recorded layers (or maxHeaders headers in all).
var ErrEncapDepth = errors.New("too many encapsulation layers")

// Protocols that Encap.Peel starts from besides the EtherTypes it knows
// (EtherTypeIPv4, EtherTypeIPv6, VLAN, MPLS, PPPoE session). They are those
// that savefile.Link returns.
const (
	// ProtoIP is an IPv4 or IPv6 packet told apart by its version nibble.
	ProtoIP uint16 = savefile.ProtoIP
	// ProtoEthernet is an Ethernet frame. It is the EtherType of
	// Transparent Ethernet Bridging, which GRE and Geneve use to say so.
	ProtoEthernet uint16 = savefile.ProtoEthernet
	// ProtoLLC is an IEEE 802.2 LLC frame, which carries IP behind a SNAP
	// header.
	ProtoLLC uint16 = savefile.ProtoLLC

	EtherTypeIPv4 uint16 = savefile.EtherTypeIPv4
	EtherTypeIPv6 uint16 = savefile.EtherTypeIPv6
)

// EtherTypes, IP protocols, ports and sizes of the layers Peel knows.
const (
	etherTypeVLAN      = 0x8100 // IEEE 802.1Q customer tag
	etherTypeQinQ      = 0x88a8 // IEEE 802.1ad service tag
	etherTypeQinQ1     = 0x9100 // pre-standard service tag
	etherTypeMPLS      = 0x8847 // RFC 3032
	etherTypeMPLSMulti = 0x8848
	etherTypePPPoE     = savefile.EtherTypePPPoE
	etherTypeERSPAN2   = 0x88be // ERSPAN type I and II (GRE protocol)
	etherTypeERSPAN3   = 0x22eb // ERSPAN type III (GRE protocol)
	etherTypePPP       = 0x880b // PPP in enhanced GRE (PPTP, RFC 2637)

	protoIPIP = 4
	protoIPv6 = 41
	protoGRE  = 47
	protoUDP  = 17

	portVXLAN      = 4789 // RFC 7348
	portVXLANLinux = 8472 // the Linux vxlan driver's default
	portGeneve     = 6081 // RFC 8926
	portGTPU       = 2152 // 3GPP TS 29.281

	ethernetHeaderLen = 14
	udpHeaderLen      = 8
)

// MaxEncap is how many layers an Encap records. Peel rejects packets with
// more, so its work per packet is bounded.
const MaxEncap = 8

// maxHeaders bounds the headers Peel walks in all, counting those it does
// not record (Ethernet, UDP, outer IP).
const maxHeaders = 3 * MaxEncap

// EncapType is the kind of an encapsulation layer. The zero value is
// invalid.
//
//enumcheck:exhaustive
type EncapType uint8

// Encapsulation layers.
const (
	_           EncapType = iota
	EncapVLAN             // IEEE 802.1Q tag (ID: VLAN ID)
	EncapQinQ             // IEEE 802.1ad or pre-standard 0x9100 service tag (ID: VLAN ID)
	EncapMPLS             // one MPLS label stack entry (ID: label)
	EncapPPPoE            // PPPoE session (ID: session ID)
	EncapGRE              // GRE (ID: key, when HasID)
	EncapERSPAN           // ERSPAN inside GRE (ID: session ID; Version 1, 2 or 3)
	EncapVXLAN            // VXLAN (ID: VNI)
	EncapGeneve           // Geneve (ID: VNI)
	EncapGTPU             // GTP-U (ID: TEID)
	EncapIPIP             // IPv4 in IPv4
	EncapSIT              // IPv6 in IPv4
	EncapIPIP6            // IPv4 in IPv6
	EncapIP6IP6           // IPv6 in IPv6
)

// encapNames are the JSON "type" values, and idKeys the JSON key of each
// type's ID ("" for none). The names of IP-in-IP follow the Linux tunnel
// modes (ip-tunnel(8)).
var (
	encapNames = [...]string{"", "vlan", "qinq", "mpls", "pppoe", "gre", "erspan", "vxlan", "geneve", "gtpu", "ipip", "sit", "ipip6", "ip6ip6"}
	idKeys     = [...]string{"", "id", "id", "label", "session", "key", "session", "vni", "vni", "teid", "", "", "", ""}
)

// String returns the JSON spelling of t.
func (t EncapType) String() string {
	if int(t) < len(encapNames) && t != 0 {
		return encapNames[t]
	}
	return "unknown"
}

// Layer is one encapsulation layer.
type Layer struct {
	Type EncapType
	// HasID says whether ID is set: always for types that have one, except
	// GRE without a key and ERSPAN type I.
	HasID bool
	// Version is the ERSPAN type (1, 2 or 3); 0 for other layers.
	Version uint8
	ID      uint32
	// Src and Dst are the addresses of the IP header that carried this
	// layer (tunnel endpoints); invalid for layers not carried by IP
	// (VLAN, MPLS, PPPoE, ERSPAN inside GRE).
	Src, Dst netip.Addr
}

// Encap is the stack of layers around a TCP segment, outermost first. It is
// a fixed-size value: recording layers never allocates.
type Encap struct {
	n      uint8
	layers [MaxEncap]Layer
}

// Len returns the number of layers.
func (e *Encap) Len() int { return int(e.n) }

// Layer returns layer i, outermost first.
func (e *Encap) Layer(i int) Layer { return e.layers[:e.n][i] }

// Reset removes all layers.
func (e *Encap) Reset() { e.n = 0 }

// Push appends a layer (innermost so far). It reports false, and records
// nothing, when e is full.
func (e *Encap) Push(l Layer) bool {
	if int(e.n) >= MaxEncap {
		return false
	}
	e.layers[e.n] = l
	e.n++
	return true
}

// PushVLAN records a VLAN tag as the outermost layer, as the kernel reports
// one it took off the packet (tpid 0 means 0x8100). It reports false when e
// is full.
func (e *Encap) PushVLAN(tpid, tci uint16) bool {
	if int(e.n) >= MaxEncap {
		return false
	}
	copy(e.layers[1:e.n+1], e.layers[:e.n])
	e.layers[0] = vlanLayer(tpid, tci)
	e.n++
	return true
}

func vlanLayer(tpid, tci uint16) Layer {
	t := EncapVLAN
	if tpid == etherTypeQinQ || tpid == etherTypeQinQ1 {
		t = EncapQinQ
	}
	return Layer{Type: t, HasID: true, ID: uint32(tci & 0x0fff)}
}

// AppendJSON appends the JSON value of the "encap" field: an array of
// objects, outermost first, or null when there are no layers. For example
//
//	[{"type":"vlan","id":10},{"type":"vxlan","vni":42,"src":"10.0.0.1","dst":"10.0.0.2"}]
//
// Each object has "type" (the EncapType names: vlan, qinq, mpls, pppoe,
// gre, erspan, vxlan, geneve, gtpu, ipip, sit, ipip6, ip6ip6), then the
// layer's number under its own key: "id" (vlan, qinq), "label" (mpls),
// "session" (pppoe, erspan), "key" (gre, only when present), "vni" (vxlan,
// geneve), "teid" (gtpu); erspan has "version" (1, 2 or 3). "src" and "dst"
// are the tunnel endpoints, on the first layer behind an IP header. The
// field names are a contract: add, never rename.
func (e *Encap) AppendJSON(b []byte) []byte {
	if e.n == 0 {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, l := range e.layers[:e.n] {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"type":"`...)
		b = append(b, l.Type.String()...)
		b = append(b, '"')
		if l.Type == EncapERSPAN {
			b = append(b, `,"version":`...)
			b = strconv.AppendUint(b, uint64(l.Version), 10)
		}
		if l.HasID && int(l.Type) < len(idKeys) && idKeys[l.Type] != "" {
			b = append(b, `,"`...)
			b = append(b, idKeys[l.Type]...)
			b = append(b, `":`...)
			b = strconv.AppendUint(b, uint64(l.ID), 10)
		}
		if l.Src.IsValid() {
			b = append(b, `,"src":"`...)
			b = l.Src.AppendTo(b)
			b = append(b, `","dst":"`...)
			b = l.Dst.AppendTo(b)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// AppendText appends the layers in brief, outermost first, separated by
// "/", with the ID after a colon and tunnel endpoints in brackets, for
// example "vlan:10/vxlan:42[10.0.0.1>10.0.0.2]". It appends nothing when
// there are no layers. The text has no spaces.
func (e *Encap) AppendText(b []byte) []byte {
	for i, l := range e.layers[:e.n] {
		if i > 0 {
			b = append(b, '/')
		}
		b = append(b, l.Type.String()...)
		if l.Type == EncapERSPAN {
			b = strconv.AppendUint(b, uint64(l.Version), 10)
		}
		if l.HasID {
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(l.ID), 10)
		}
		if l.Src.IsValid() {
			b = append(b, '[')
			b = l.Src.AppendTo(b)
			b = append(b, '>')
			b = l.Dst.AppendTo(b)
			b = append(b, ']')
		}
	}
	return b
}

// peeler is the state of one Peel.
type peeler struct {
	enc *Encap
	// src and dst are the endpoints of the IP header that carries the next
	// layer; valid only right after such a header.
	src, dst netip.Addr
}

func (p *peeler) push(l Layer) error {
	l.Src, l.Dst = p.src, p.dst
	p.src, p.dst = netip.Addr{}, netip.Addr{}
	if !p.enc.Push(l) {
		return ErrEncapDepth
	}
	return nil
}

// Peel removes the layers around the innermost IP packet of b, whose first
// header is proto (an EtherType, ProtoEthernet or ProtoIP), records them in
// e (which it resets first) and returns that IP packet. The IP packet is the
// first one that does not carry a tunnel Peel knows; it need not carry TCP,
// so decode it with Segment.Decode. Peel returns ErrNotIP when a layer
// carries something other than IP or a known layer, ErrTruncated or
// ErrMalformed for broken headers and ErrEncapDepth for a packet nested too
// deep. It never allocates and never reads outside b; the result aliases b.
//
// A packet is taken for a tunnel by the same signs Wireshark uses: the IP
// protocol (4, 41, 47), or the UDP port (VXLAN 4789 and 8472, Geneve 6081,
// GTP-U 2152, destination port first, then source port).
func (e *Encap) Peel(b []byte, proto uint16) ([]byte, error) {
	e.n = 0
	b = b[:len(b):len(b)]
	if plainTCP(b, proto) {
		return b, nil
	}
	p := peeler{enc: e}
	for range maxHeaders {
		var err error
		switch proto {
		case ProtoIP:
			if len(b) == 0 {
				return nil, ErrTruncated
			}
			switch b[0] >> 4 {
			case 4:
				proto = EtherTypeIPv4
			case 6:
				proto = EtherTypeIPv6
			default:
				return nil, ErrNotIP
			}
		case EtherTypeIPv4, EtherTypeIPv6:
			var next []byte
			next, proto, err = p.ip(b, proto)
			if err != nil {
				return nil, err
			}
			if next == nil {
				return b, nil // the innermost IP packet
			}
			b = next
		case ProtoEthernet:
			b, proto, err = ethernet(b)
		case ProtoLLC:
			b, proto, err = llcSNAP(b)
		case etherTypeVLAN, etherTypeQinQ, etherTypeQinQ1:
			if len(b) < 4 {
				return nil, ErrTruncated
			}
			if err := p.push(vlanLayer(proto, binary.BigEndian.Uint16(b))); err != nil {
				return nil, err
			}
			b, proto = b[4:], binary.BigEndian.Uint16(b[2:])
		case etherTypeMPLS, etherTypeMPLSMulti:
			b, proto, err = p.mpls(b)
		case etherTypePPPoE:
			// RFC 2516 section 4: VER/TYPE 0x11, CODE 0 (session data),
			// SESSION_ID, LENGTH, then the PPP protocol field.
			if len(b) < 8 {
				return nil, ErrTruncated
			}
			if b[0] != 0x11 || b[1] != 0 {
				return nil, ErrMalformed
			}
			if err := p.push(Layer{Type: EncapPPPoE, HasID: true, ID: uint32(binary.BigEndian.Uint16(b[2:]))}); err != nil {
				return nil, err
			}
			b, proto, err = ppp(b[6:])
		default:
			return nil, ErrNotIP
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, ErrEncapDepth
}

// ethernet strips an Ethernet header, and an LLC/SNAP header behind an
// 802.3 length field (RFC 1042), and returns the payload and its EtherType.
func ethernet(b []byte) ([]byte, uint16, error) {
	if len(b) < ethernetHeaderLen {
		return nil, 0, ErrTruncated
	}
	et := binary.BigEndian.Uint16(b[12:])
	b = b[ethernetHeaderLen:]
	if et <= 1500 {
		return llcSNAP(b)
	}
	return b, et, nil
}

// llcSNAP strips an LLC/SNAP header (see savefile.LLCSNAP).
func llcSNAP(b []byte) ([]byte, uint16, error) {
	b, et, ok := savefile.LLCSNAP(b)
	if !ok {
		return nil, 0, ErrNotIP
	}
	return b, et, nil
}

// ppp reads a PPP protocol field (see savefile.PPP).
func ppp(b []byte) ([]byte, uint16, error) {
	b, et, ok := savefile.PPP(b)
	if !ok {
		return nil, 0, ErrNotIP
	}
	return b, et, nil
}

// mpls strips a label stack (RFC 3032), recording each entry, and guesses
// what follows from its first nibble as routers do: 4 is IPv4, 6 is IPv6,
// and 0 is an Ethernet pseudowire (RFC 4448), with or without a control
// word (RFC 4385).
func (p *peeler) mpls(b []byte) ([]byte, uint16, error) {
	for {
		if len(b) < 4 {
			return nil, 0, ErrTruncated
		}
		entry := binary.BigEndian.Uint32(b)
		if err := p.push(Layer{Type: EncapMPLS, HasID: true, ID: entry >> 12}); err != nil {
			return nil, 0, err
		}
		b = b[4:]
		if entry&0x100 != 0 { // bottom of stack
			break
		}
	}
	if len(b) == 0 {
		return nil, 0, ErrTruncated
	}
	switch b[0] >> 4 {
	case 4:
		return b, EtherTypeIPv4, nil
	case 6:
		return b, EtherTypeIPv6, nil
	case 0:
		// An Ethernet pseudowire starts with a control word, whose first
		// nibble is 0, or without one with a MAC address, which may too.
		// Without one the EtherType is at 12; with one, bytes 12-13 fall
		// in the source MAC address, rarely an EtherType that Peel goes
		// on behind.
		if len(b) >= ethernetHeaderLen && peeledEtherType(binary.BigEndian.Uint16(b[12:])) {
			return b, ProtoEthernet, nil
		}
		if len(b) < 4 {
			return nil, 0, ErrTruncated
		}
		return b[4:], ProtoEthernet, nil
	}
	return nil, 0, ErrNotIP
}

// peeledEtherType reports whether Peel goes on behind EtherType et.
func peeledEtherType(et uint16) bool {
	switch et {
	case EtherTypeIPv4, EtherTypeIPv6, etherTypeVLAN, etherTypeQinQ, etherTypeQinQ1,
		etherTypeMPLS, etherTypeMPLSMulti, etherTypePPPoE:
		return true
	}
	return false
}

// ip reads the IP header at the start of b (proto says which version). If
// it carries a tunnel Peel knows, ip returns the tunnel's payload and its
// protocol and sets p.src and p.dst for the layer it records; otherwise it
// returns a nil slice: b is the innermost IP packet.
func (p *peeler) ip(b []byte, proto uint16) ([]byte, uint16, error) {
	var (
		next uint8
		off  int
		v6   = proto == EtherTypeIPv6
	)
	if !v6 {
		if len(b) < ipv4MinimumSize {
			return nil, 0, ErrTruncated
		}
		if b[0]>>4 != 4 {
			// The IP stack drops a packet whose version disagrees with
			// the EtherType; so does Peel.
			return nil, 0, ErrNotIP
		}
		next, off = b[ipv4ProtocolOffset], int(b[0]&0x0f)*4
		if next == protoTCP || binary.BigEndian.Uint16(b[ipv4FragOffset:])&ipv4FragMask != 0 {
			// TCP, or a non-first fragment (which Decode reports).
			return nil, 0, nil
		}
		if off < ipv4MinimumSize || len(b) < off {
			return nil, 0, nil // Decode reports it
		}
	} else {
		if len(b) < ipv6FixedSize {
			return nil, 0, ErrTruncated
		}
		if b[0]>>4 != 6 {
			return nil, 0, ErrNotIP
		}
		if b[ipv6NextHdrOffset] == protoTCP {
			return nil, 0, nil
		}
		var err error
		if next, off, err = walkIPv6(b); err != nil || next == protoTCP {
			return nil, 0, nil // Decode reports the same error
		}
		if len(b) < off {
			return nil, 0, nil
		}
	}

	var inner uint16
	var t EncapType
	switch next {
	case protoIPIP:
		inner, t = EtherTypeIPv4, EncapIPIP
		if v6 {
			t = EncapIPIP6
		}
	case protoIPv6:
		inner, t = EtherTypeIPv6, EncapSIT
		if v6 {
			t = EncapIP6IP6
		}
	case protoGRE, protoUDP:
	default:
		return nil, 0, nil
	}
	if v6 {
		p.src = netip.AddrFrom16([16]byte(b[ipv6SrcOffset : ipv6SrcOffset+16]))
		p.dst = netip.AddrFrom16([16]byte(b[ipv6DstOffset : ipv6DstOffset+16]))
	} else {
		p.src = netip.AddrFrom4([4]byte(b[ipv4SrcOffset : ipv4SrcOffset+4]))
		p.dst = netip.AddrFrom4([4]byte(b[ipv4DstOffset : ipv4DstOffset+4]))
	}
	payload := b[off:]
	switch next {
	case protoGRE:
		return p.gre(payload)
	case protoUDP:
		return p.udp(payload)
	}
	if err := p.push(Layer{Type: t}); err != nil {
		return nil, 0, err
	}
	return payload, inner, nil
}

// GRE flag bits (RFC 2784, RFC 2890, RFC 2637).
const (
	greChecksum = 0x80
	greRouting  = 0x40
	greKey      = 0x20
	greSeq      = 0x10
	greAck      = 0x80 // in the second byte, version 1 only
)

// gre strips a GRE header and, for mirrored traffic, an ERSPAN header.
func (p *peeler) gre(b []byte) ([]byte, uint16, error) {
	if len(b) < 4 {
		return nil, 0, ErrTruncated
	}
	flags, version := b[0], b[1]&0x07
	proto := binary.BigEndian.Uint16(b[2:])
	if flags&greRouting != 0 || version > 1 {
		// Source routing (RFC 1701) is deprecated and unused; other
		// versions are not GRE.
		return nil, 0, ErrMalformed
	}
	off := 4
	if flags&greChecksum != 0 {
		off += 4
	}
	l := Layer{Type: EncapGRE}
	if flags&greKey != 0 {
		if len(b) < off+4 {
			return nil, 0, ErrTruncated
		}
		l.HasID, l.ID = true, binary.BigEndian.Uint32(b[off:])
		off += 4
	}
	if flags&greSeq != 0 {
		off += 4
	}
	if version == 1 && b[1]&greAck != 0 {
		off += 4
	}
	if len(b) < off {
		return nil, 0, ErrTruncated
	}
	if err := p.push(l); err != nil {
		return nil, 0, err
	}
	b = b[off:]
	switch proto {
	case etherTypePPP:
		return ppp(skipPPPAddress(b))
	case etherTypeERSPAN2:
		if flags&greSeq == 0 {
			// ERSPAN type I has no header of its own, and no
			// sequence number in GRE (how Wireshark tells the two apart).
			return b, ProtoEthernet, p.push(Layer{Type: EncapERSPAN, Version: 1})
		}
		// Type II (draft-foschiano-erspan section 4.1): version 1 in the
		// top nibble, 10-bit session ID, 8 bytes.
		if len(b) < 8 {
			return nil, 0, ErrTruncated
		}
		if b[0]>>4 != 1 {
			return nil, 0, ErrMalformed
		}
		l := Layer{Type: EncapERSPAN, Version: 2, HasID: true, ID: uint32(binary.BigEndian.Uint16(b[2:]) & 0x3ff)}
		return b[8:], ProtoEthernet, p.push(l)
	case etherTypeERSPAN3:
		// Type III (section 4.2): version 2, 12 bytes, and an 8-byte
		// platform-specific subheader when the O bit is set.
		if len(b) < 12 {
			return nil, 0, ErrTruncated
		}
		if b[0]>>4 != 2 {
			return nil, 0, ErrMalformed
		}
		n := 12
		if b[11]&0x01 != 0 {
			n += 8
		}
		if len(b) < n {
			return nil, 0, ErrTruncated
		}
		l := Layer{Type: EncapERSPAN, Version: 3, HasID: true, ID: uint32(binary.BigEndian.Uint16(b[2:]) & 0x3ff)}
		return b[n:], ProtoEthernet, p.push(l)
	}
	return b, proto, nil
}

// skipPPPAddress drops the HDLC address and control bytes (0xff 0x03) that
// may precede a PPP protocol field (RFC 1662 section 3.2).
func skipPPPAddress(b []byte) []byte {
	if len(b) >= 2 && b[0] == 0xff && b[1] == 0x03 {
		return b[2:]
	}
	return b
}

// udp strips a UDP header and the tunnel header its port announces.
func (p *peeler) udp(b []byte) ([]byte, uint16, error) {
	if len(b) < udpHeaderLen {
		return nil, 0, ErrTruncated
	}
	port := binary.BigEndian.Uint16(b[2:])
	if !tunnelPort(port) {
		port = binary.BigEndian.Uint16(b[0:])
	}
	b = b[udpHeaderLen:]
	switch port {
	case portVXLAN, portVXLANLinux:
		// RFC 7348 section 5: flags (I bit 0x08 says the VNI is valid),
		// 24-bit VNI, 8 bytes, then an Ethernet frame.
		if len(b) < 8 {
			return nil, 0, ErrTruncated
		}
		if b[0]&0x08 == 0 {
			return nil, 0, ErrMalformed
		}
		l := Layer{Type: EncapVXLAN, HasID: true, ID: binary.BigEndian.Uint32(b[4:]) >> 8}
		return b[8:], ProtoEthernet, p.push(l)
	case portGeneve:
		// RFC 8926 section 3.4: version 0, option length in 4-byte
		// words, protocol type, 24-bit VNI.
		if len(b) < 8 {
			return nil, 0, ErrTruncated
		}
		if b[0]>>6 != 0 {
			return nil, 0, ErrMalformed
		}
		n := 8 + int(b[0]&0x3f)*4
		if len(b) < n {
			return nil, 0, ErrTruncated
		}
		l := Layer{Type: EncapGeneve, HasID: true, ID: binary.BigEndian.Uint32(b[4:]) >> 8}
		return b[n:], binary.BigEndian.Uint16(b[2:]), p.push(l)
	case portGTPU:
		return p.gtpu(b)
	}
	return nil, 0, ErrNotTCP
}

func tunnelPort(port uint16) bool {
	return port == portVXLAN || port == portVXLANLinux || port == portGeneve || port == portGTPU
}

// gtpu strips a GTP-U header with its extension headers (3GPP TS 29.281
// section 5). Only G-PDUs (message type 255) carry user packets.
func (p *peeler) gtpu(b []byte) ([]byte, uint16, error) {
	if len(b) < 8 {
		return nil, 0, ErrTruncated
	}
	flags := b[0]
	if flags>>5 != 1 || flags&0x10 == 0 {
		return nil, 0, ErrMalformed // not version 1 with PT=1
	}
	if b[1] != 0xff {
		return nil, 0, ErrNotIP // echo, error indication, end marker
	}
	l := Layer{Type: EncapGTPU, HasID: true, ID: binary.BigEndian.Uint32(b[4:])}
	off := 8
	if flags&0x07 != 0 {
		// E, S or PN: sequence number, N-PDU number and next extension
		// header type are all present.
		if len(b) < 12 {
			return nil, 0, ErrTruncated
		}
		next := b[11]
		off = 12
		for range maxHeaders {
			if flags&0x04 == 0 || next == 0 {
				next = 0
				break
			}
			// Each extension header: length in 4-byte units, content,
			// next extension header type in its last byte.
			if len(b) < off+1 {
				return nil, 0, ErrTruncated
			}
			n := int(b[off]) * 4
			if n == 0 {
				return nil, 0, ErrMalformed
			}
			if len(b) < off+n {
				return nil, 0, ErrTruncated
			}
			next = b[off+n-1]
			off += n
		}
		if next != 0 {
			return nil, 0, ErrEncapDepth
		}
	}
	if len(b) < off {
		return nil, 0, ErrTruncated
	}
	return b[off:], ProtoIP, p.push(l)
}

// DecodeLayers peels the layers of b (see Encap.Peel), records them in enc
// and decodes the innermost IP packet into s. It returns that packet, which
// s's offsets refer to; it ends where b ends, so it starts at
// len(b)-len(ip). It never allocates.
func (s *Segment) DecodeLayers(b []byte, proto uint16, enc *Encap) ([]byte, error) {
	if plainTCP(b, proto) {
		enc.n = 0
		return b, s.Decode(b)
	}
	ip, err := enc.Peel(b, proto)
	if err != nil {
		return nil, err
	}
	return ip, s.Decode(ip)
}

// plainTCP reports whether b is the common case, TCP right inside IPv4 or
// IPv6 (without extension headers), which needs no peeling. It is small
// enough to be inlined.
func plainTCP(b []byte, proto uint16) bool {
	switch proto {
	case EtherTypeIPv4:
		return len(b) >= ipv4MinimumSize && b[0]>>4 == 4 && b[ipv4ProtocolOffset] == protoTCP
	case EtherTypeIPv6:
		return len(b) >= ipv6FixedSize && b[0]>>4 == 6 && b[ipv6NextHdrOffset] == protoTCP
	}
	return false
}
