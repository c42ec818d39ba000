package savefile

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// ErrUnsupportedLinkType says that a file holds frames of a link type that
// Link does not strip.
var ErrUnsupportedLinkType = errors.New("not supported (supported: Ethernet, Linux cooked SLL and SLL2, raw IP, BSD loopback, PPP, PPPoE, Cisco HDLC, FDDI, Token Ring, IEEE 802.11 with or without radiotap)")

// A LinkType is a LINKTYPE_ value from the tcpdump.org link-layer header
// type registry (draft-ietf-opsawg-pcaplinktype). It names the header that
// precedes the network-layer packet in a captured frame.
type LinkType uint16

// Link types that Network can strip. The registry has many more; a Reader
// returns any of them unchanged.
const (
	LinkTypeNull       LinkType = 0   // BSD loopback: 4-byte AF_ value in the writer's byte order
	LinkTypeEthernet   LinkType = 1   // IEEE 802.3 Ethernet (DLT_EN10MB)
	LinkTypeRawBSD     LinkType = 12  // raw IPv4/IPv6, DLT_RAW as written on most BSDs
	LinkTypeRawOpenBSD LinkType = 14  // raw IPv4/IPv6, DLT_RAW as written on OpenBSD
	LinkTypeRaw        LinkType = 101 // raw IPv4/IPv6 (LINKTYPE_RAW)
	LinkTypeLoop       LinkType = 108 // OpenBSD loopback: 4-byte AF_ value, network byte order
	LinkTypeLinuxSLL   LinkType = 113 // Linux cooked capture v1, 16-byte header
	LinkTypeIPv4       LinkType = 228 // raw IPv4
	LinkTypeIPv6       LinkType = 229 // raw IPv6
	LinkTypeLinuxSLL2  LinkType = 276 // Linux cooked capture v2, 20-byte header
)

// String returns the registry's short name (as tcpdump prints it), or
// "LinkType(N)" for a value this package does not know.
func (lt LinkType) String() string {
	switch lt {
	case LinkTypeNull:
		return "NULL"
	case LinkTypeEthernet:
		return "EN10MB"
	case LinkTypeRawBSD, LinkTypeRawOpenBSD, LinkTypeRaw:
		return "RAW"
	case LinkTypeLoop:
		return "LOOP"
	case LinkTypeLinuxSLL:
		return "LINUX_SLL"
	case LinkTypeIPv4:
		return "IPV4"
	case LinkTypeIPv6:
		return "IPV6"
	case LinkTypeLinuxSLL2:
		return "LINUX_SLL2"
	case LinkTypeIEEE8025:
		return "IEEE802"
	case LinkTypePPP:
		return "PPP"
	case LinkTypeFDDI:
		return "FDDI"
	case LinkTypePPPHDLC:
		return "PPP_SERIAL"
	case LinkTypePPPEther:
		return "PPP_ETHER"
	case LinkTypeCHDLC:
		return "C_HDLC"
	case LinkTypeIEEE80211:
		return "IEEE802_11"
	case LinkTypeIEEE80211Radio:
		return "IEEE802_11_RADIO"
	}
	return "LinkType(" + strconv.Itoa(int(lt)) + ")"
}

// A Direction says whether a packet was received or sent by the capturing
// host. The values are those of the pcapng epb_flags inbound/outbound bits.
type Direction uint8

// Directions. The zero value means the capture did not record one.
const (
	DirectionUnknown  Direction = 0
	DirectionInbound  Direction = 1
	DirectionOutbound Direction = 2
)

// String returns "unknown", "inbound" or "outbound".
func (d Direction) String() string {
	switch d {
	case DirectionUnknown:
		return "unknown"
	case DirectionInbound:
		return "inbound"
	case DirectionOutbound:
		return "outbound"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// Packet types of the Linux cooked headers (sll_pkttype, packet(7)).
const (
	PacketHost      = 0 // PACKET_HOST: addressed to this host
	PacketBroadcast = 1 // PACKET_BROADCAST
	PacketMulticast = 2 // PACKET_MULTICAST
	PacketOtherHost = 3 // PACKET_OTHERHOST: seen in promiscuous mode
	PacketOutgoing  = 4 // PACKET_OUTGOING: sent by this host
)

// ARP hardware types (sll_hatype, include/uapi/linux/if_arp.h) used by the
// writers.
const (
	ARPHRDEther    = 1     // ARPHRD_ETHER
	ARPHRDLoopback = 772   // ARPHRD_LOOPBACK
	ARPHRDNone     = 65534 // ARPHRD_NONE: no link-layer header (tun, wireguard)
)

// EtherTypes of the network-layer protocols Network returns, and of the tags
// it strips.
const (
	EtherTypeIPv4  = 0x0800
	EtherTypeIPv6  = 0x86dd
	etherTypeVLAN  = 0x8100 // IEEE 802.1Q customer tag
	etherTypeQinQ  = 0x88a8 // IEEE 802.1ad service tag
	etherTypeQinQ1 = 0x9100 // pre-standard QinQ tag
)

// Header sizes.
const (
	ethernetHeaderLen = 14
	vlanTagLen        = 4
	sllHeaderLen      = 16
	sll2HeaderLen     = 20
	nullHeaderLen     = 4
	snapHeaderLen     = 8 // LLC DSAP, SSAP, control, SNAP OUI and EtherType
)

// Address families in BSD loopback headers. IPv6 has a different number on
// each BSD, so all three are accepted (as libpcap does).
const (
	bsdAFInet         = 2
	bsdAFInet6NetBSD  = 24 // also OpenBSD
	bsdAFInet6FreeBSD = 28
	bsdAFInet6Darwin  = 30
)

// LinkInfo is what Network learned from a link-layer header besides the
// position of the IP packet.
type LinkInfo struct {
	// EtherType is EtherTypeIPv4 or EtherTypeIPv6.
	EtherType uint16
	// Direction comes from the packet type of a Linux cooked header. It is
	// DirectionUnknown for the other link types.
	Direction Direction
	// Ifindex is the interface index from a LINUX_SLL2 header, 0 if unknown.
	Ifindex int
	// PktType and HAType are sll_pkttype and sll_hatype of a Linux cooked
	// header (LINUX_SLL and LINUX_SLL2). They are 0 for other link types,
	// which for PktType is also PacketHost: check the link type first.
	PktType uint8
	HAType  uint16
	// VLANTags is the number of 802.1Q/802.1ad tags stripped and VLAN the
	// VLAN ID of the outermost one.
	VLANTags int
	VLAN     uint16
}

// Network returns the IPv4 or IPv6 packet inside data, a frame of link type
// lt, and what the link-layer header said about it. ok is false when the
// link type is not one Link strips, the header is short, or the frame does
// not carry IP (ARP, LLDP, ...) right behind the link-layer header and any
// VLAN tags. The returned slice aliases data; it may still hold link-layer
// padding or an FCS after the IP packet, so trust the IP length fields, not
// len(ip). Network does not allocate. For IP inside other layers (MPLS,
// PPPoE, tunnels), use Link and peel the rest.
func Network(lt LinkType, data []byte) (ip []byte, info LinkInfo, ok bool) {
	p, proto, info, ok := Link(lt, data)
	if !ok {
		return nil, info, false
	}
	switch proto {
	case ProtoIP:
		switch {
		case len(p) > 0 && p[0]>>4 == 4:
			proto = EtherTypeIPv4
		case len(p) > 0 && p[0]>>4 == 6:
			proto = EtherTypeIPv6
		default:
			return nil, info, false
		}
	case ProtoEthernet:
		if len(p) < ethernetHeaderLen {
			return nil, info, false
		}
		proto, p = binary.BigEndian.Uint16(p[12:]), p[ethernetHeaderLen:]
		// An 802.3 length field instead of an EtherType: IP can only be
		// there behind an LLC/SNAP header (RFC 1042).
		if proto <= maxLength {
			if p, proto, ok = LLCSNAP(p); !ok {
				return nil, info, false
			}
		}
	case ProtoLLC:
		if p, proto, ok = LLCSNAP(p); !ok {
			return nil, info, false
		}
	}
	return etherPayload(proto, p, info)
}

// Protocols that Link returns besides EtherTypes. They are the values Linux
// puts in sll_protocol for the same payloads (include/uapi/linux/if_ether.h)
// or, for Ethernet, the EtherType that GRE uses for it.
const (
	// ProtoIP is an IPv4 or IPv6 packet; its version nibble says which.
	ProtoIP = 0
	// ProtoLLC is an IEEE 802.2 LLC frame (ETH_P_802_2).
	ProtoLLC = 0x0004
	// ProtoEthernet is an Ethernet frame (Transparent Ethernet Bridging).
	ProtoEthernet = 0x6558
	// EtherTypePPPoE is a PPPoE session frame (RFC 2516).
	EtherTypePPPoE = 0x8864

	// maxLength is the largest 802.3 length field; larger values are
	// EtherTypes.
	maxLength = 1500
)

// More link types that Link strips.
const (
	LinkTypeIEEE8025       LinkType = 6   // IEEE 802.5 Token Ring
	LinkTypePPP            LinkType = 9   // PPP, RFC 1661, optionally with HDLC address and control
	LinkTypeFDDI           LinkType = 10  // FDDI, ANSI X3.139
	LinkTypePPPHDLC        LinkType = 50  // PPP in HDLC-like framing, RFC 1662
	LinkTypePPPEther       LinkType = 51  // PPPoE session header without Ethernet, RFC 2516
	LinkTypeCHDLC          LinkType = 104 // Cisco HDLC: address, control, EtherType
	LinkTypeIEEE80211      LinkType = 105 // IEEE 802.11 without radio header
	LinkTypeIEEE80211Radio LinkType = 127 // IEEE 802.11 with a radiotap header
)

// Supported reports whether Link strips frames of link type lt.
func (lt LinkType) Supported() bool {
	switch lt {
	case LinkTypeNull, LinkTypeEthernet, LinkTypeRawBSD, LinkTypeRawOpenBSD, LinkTypeRaw,
		LinkTypeLoop, LinkTypeLinuxSLL, LinkTypeIPv4, LinkTypeIPv6, LinkTypeLinuxSLL2,
		LinkTypeIEEE8025, LinkTypePPP, LinkTypeFDDI, LinkTypePPPHDLC, LinkTypePPPEther,
		LinkTypeCHDLC, LinkTypeIEEE80211, LinkTypeIEEE80211Radio:
		return true
	}
	return false
}

// Link strips the link-layer header of data, a frame of link type lt, and
// returns the payload, the protocol of the payload (an EtherType or one of
// ProtoIP, ProtoLLC and ProtoEthernet) and what the header said. ok is false
// when lt is not Supported, the header is short, or the frame carries no
// network-layer payload (802.11 management, control, null and protected
// frames; FDDI and Token Ring MAC frames; PPP control protocols). The
// payload aliases data. Link does not allocate.
func Link(lt LinkType, data []byte) (payload []byte, proto uint16, info LinkInfo, ok bool) {
	switch lt {
	case LinkTypeEthernet:
		return data, ProtoEthernet, info, true

	case LinkTypeLinuxSLL:
		if len(data) < sllHeaderLen {
			return nil, 0, info, false
		}
		pkttype := binary.BigEndian.Uint16(data[0:])
		if pkttype <= 0xff {
			info.PktType = uint8(pkttype)
			info.Direction = pktTypeDirection(info.PktType)
		}
		info.HAType = binary.BigEndian.Uint16(data[2:])
		return data[sllHeaderLen:], binary.BigEndian.Uint16(data[14:]), info, true

	case LinkTypeLinuxSLL2:
		if len(data) < sll2HeaderLen {
			return nil, 0, info, false
		}
		info.Ifindex = int(binary.BigEndian.Uint32(data[4:]))
		info.HAType = binary.BigEndian.Uint16(data[8:])
		info.PktType = data[10]
		info.Direction = pktTypeDirection(info.PktType)
		return data[sll2HeaderLen:], binary.BigEndian.Uint16(data[0:]), info, true

	case LinkTypeRaw, LinkTypeRawBSD, LinkTypeRawOpenBSD:
		return data, ProtoIP, info, true

	case LinkTypeIPv4:
		return data, EtherTypeIPv4, info, true

	case LinkTypeIPv6:
		return data, EtherTypeIPv6, info, true

	case LinkTypeNull, LinkTypeLoop:
		if len(data) < nullHeaderLen {
			return nil, 0, info, false
		}
		// LOOP is always big-endian. NULL is in the byte order of the
		// machine that wrote the file, which need not be the one that
		// wrote the file header (a file can be converted), so try both:
		// the valid values are small, so the orders cannot be confused.
		et := bsdFamily(binary.BigEndian.Uint32(data))
		if et == 0 && lt == LinkTypeNull {
			et = bsdFamily(binary.LittleEndian.Uint32(data))
		}
		if et == 0 {
			return nil, 0, info, false
		}
		return data[nullHeaderLen:], et, info, true

	case LinkTypePPP, LinkTypePPPHDLC:
		// RFC 1662 section 3.2: address 0xff and control 0x03, which
		// may be omitted (RFC 1661 section 6.6), then the protocol, which
		// may be compressed to one byte (section 6.5).
		if len(data) >= 2 && data[0] == 0xff && data[1] == 0x03 {
			data = data[2:]
		}
		p, et, ok := PPP(data)
		return p, et, info, ok

	case LinkTypePPPEther:
		return data, EtherTypePPPoE, info, true

	case LinkTypeCHDLC:
		if len(data) < 4 {
			return nil, 0, info, false
		}
		return data[4:], binary.BigEndian.Uint16(data[2:]), info, true

	case LinkTypeFDDI:
		// Frame control, destination, source (ANSI X3.139). Frame
		// control 0101xxxx (asynchronous) or 1101xxxx (synchronous) is an
		// LLC frame; others are MAC and SMT frames.
		if len(data) < fddiHeaderLen || data[0]&0x70 != 0x50 {
			return nil, 0, info, false
		}
		return data[fddiHeaderLen:], ProtoLLC, info, true

	case LinkTypeIEEE8025:
		// Access control, frame control, destination, source, then a
		// routing information field when the source address has its top
		// bit set; its length is in the low 5 bits of its first byte.
		// Frame control 01xxxxxx is an LLC frame (IEEE 802.5 section 3.2).
		if len(data) < tokenRingHeaderLen || data[1]&0xc0 != 0x40 {
			return nil, 0, info, false
		}
		n := tokenRingHeaderLen
		if data[8]&0x80 != 0 {
			if len(data) < n+2 {
				return nil, 0, info, false
			}
			n += int(data[n] & 0x1f)
			if len(data) < n {
				return nil, 0, info, false
			}
		}
		return data[n:], ProtoLLC, info, true

	case LinkTypeIEEE80211Radio:
		n, fcsPad, ok := radiotap(data)
		if !ok {
			return nil, 0, info, false
		}
		p, ok := ieee80211(data[n:], fcsPad)
		return p, ProtoLLC, info, ok

	case LinkTypeIEEE80211:
		p, ok := ieee80211(data, false)
		return p, ProtoLLC, info, ok
	}
	return nil, 0, info, false
}

// Header sizes of the older LANs.
const (
	fddiHeaderLen      = 13
	tokenRingHeaderLen = 14
)

// LLCSNAP strips an IEEE 802.2 LLC header with a SNAP header (DSAP and SSAP
// 0xaa, UI frame) whose OUI is zero (RFC 1042) or Cisco's 00-00-f8, and
// returns the payload and its EtherType. ok is false for anything else:
// IP is carried only that way over 802.2 links.
func LLCSNAP(b []byte) (payload []byte, ethertype uint16, ok bool) {
	if len(b) < snapHeaderLen || b[0] != 0xaa || b[1] != 0xaa || b[2] != 0x03 ||
		b[3] != 0 || b[4] != 0 || (b[5] != 0 && b[5] != 0xf8) {
		return nil, 0, false
	}
	return b[snapHeaderLen:], binary.BigEndian.Uint16(b[6:]), true
}

// PPP protocol numbers (RFC 1332, RFC 5072).
const (
	pppIPv4 = 0x0021
	pppIPv6 = 0x0057
)

// PPP reads a PPP protocol field (RFC 1661 section 2), which may be
// compressed to one byte (section 6.5), and returns the IP packet behind it
// and its EtherType. ok is false for protocols other than IPv4 and IPv6.
func PPP(b []byte) (payload []byte, ethertype uint16, ok bool) {
	if len(b) == 0 {
		return nil, 0, false
	}
	var proto uint16
	if b[0]&1 == 1 {
		proto, b = uint16(b[0]), b[1:]
	} else {
		if len(b) < 2 {
			return nil, 0, false
		}
		proto, b = binary.BigEndian.Uint16(b), b[2:]
	}
	switch proto {
	case pppIPv4:
		return b, EtherTypeIPv4, true
	case pppIPv6:
		return b, EtherTypeIPv6, true
	}
	return nil, 0, false
}

// radiotap returns the length of a radiotap header (radiotap.org) and
// whether its Flags field says the 802.11 header is padded to 32 bits.
func radiotap(b []byte) (n int, pad bool, ok bool) {
	if len(b) < 8 || b[0] != 0 {
		return 0, false, false
	}
	n = int(binary.LittleEndian.Uint16(b[2:]))
	if n < 8 || len(b) < n {
		return 0, false, false
	}
	present := binary.LittleEndian.Uint32(b[4:])
	// The fields start after the chain of present words (bit 31 says
	// another follows). Flags (bit 1) is a byte after TSFT (bit 0, 8
	// bytes, 8-byte aligned from the header start).
	off := 8
	for w := present; w&(1<<31) != 0; {
		if off+4 > n {
			return 0, false, false
		}
		w = binary.LittleEndian.Uint32(b[off:])
		off += 4
	}
	if present&1 != 0 {
		off = (off+7)&^7 + 8
	}
	if present&2 != 0 && off < n {
		pad = b[off]&0x20 != 0 // IEEE80211_RADIOTAP_F_DATAPAD
	}
	return n, pad, true
}

// 802.11 frame control bits (IEEE 802.11-2020 section 9.2.4.1).
const (
	wlanTypeData    = 2
	wlanSubtypeQoS  = 0x8
	wlanSubtypeNull = 0x4
	wlanToDS        = 0x01
	wlanFromDS      = 0x02
	wlanProtected   = 0x40
	wlanOrder       = 0x80
	wlanAMSDU       = 0x80 // in the first byte of QoS control
)

// ieee80211 strips an 802.11 data frame header and returns the frame body,
// which starts with LLC/SNAP. Frames that carry no data, are encrypted or
// are A-MSDUs are not returned. pad says the header is padded to a multiple
// of 4 bytes.
func ieee80211(b []byte, pad bool) ([]byte, bool) {
	if len(b) < 24 {
		return nil, false
	}
	fc0, fc1 := b[0], b[1]
	if fc0&0x03 != 0 || (fc0>>2)&0x03 != wlanTypeData {
		return nil, false
	}
	subtype := fc0 >> 4
	if subtype&wlanSubtypeNull != 0 || fc1&wlanProtected != 0 {
		return nil, false
	}
	n := 24
	if fc1&(wlanToDS|wlanFromDS) == wlanToDS|wlanFromDS {
		n += 6 // fourth address
	}
	if subtype&wlanSubtypeQoS != 0 {
		if len(b) < n+2 || b[n]&wlanAMSDU != 0 {
			return nil, false
		}
		n += 2
		if fc1&wlanOrder != 0 {
			n += 4 // HT control
		}
	}
	if pad {
		n = (n + 3) &^ 3
	}
	if len(b) < n {
		return nil, false
	}
	return b[n:], true
}

// etherPayload strips any VLAN tags in front of p, whose EtherType is et,
// and returns the IP packet.
func etherPayload(et uint16, p []byte, info LinkInfo) ([]byte, LinkInfo, bool) {
	for et == etherTypeVLAN || et == etherTypeQinQ || et == etherTypeQinQ1 {
		if len(p) < vlanTagLen {
			return nil, info, false
		}
		if info.VLANTags == 0 {
			info.VLAN = binary.BigEndian.Uint16(p) & 0x0fff
		}
		info.VLANTags++
		et = binary.BigEndian.Uint16(p[2:])
		p = p[vlanTagLen:]
	}
	return ipPayload(et, p, info)
}

// ipPayload returns p if it starts with an IP header of the version that et
// announces.
func ipPayload(et uint16, p []byte, info LinkInfo) ([]byte, LinkInfo, bool) {
	var version byte
	switch et {
	case EtherTypeIPv4:
		version = 4
	case EtherTypeIPv6:
		version = 6
	default:
		return nil, info, false
	}
	if len(p) == 0 || p[0]>>4 != version {
		return nil, info, false
	}
	info.EtherType = et
	return p, info, true
}

// bsdFamily maps a BSD loopback address family to an EtherType, or 0.
func bsdFamily(af uint32) uint16 {
	switch af {
	case bsdAFInet:
		return EtherTypeIPv4
	case bsdAFInet6NetBSD, bsdAFInet6FreeBSD, bsdAFInet6Darwin:
		return EtherTypeIPv6
	}
	return 0
}

// pktTypeDirection maps sll_pkttype to a Direction: everything the
// interface received is inbound, including frames for other hosts seen in
// promiscuous mode.
func pktTypeDirection(t uint8) Direction {
	switch t {
	case PacketHost, PacketBroadcast, PacketMulticast, PacketOtherHost:
		return DirectionInbound
	case PacketOutgoing:
		return DirectionOutbound
	}
	return DirectionUnknown
}
