package savefile

import (
	"encoding/binary"
	"strconv"
)

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
// link type is not one of the LinkType constants, the header is short, or
// the frame does not carry IP (ARP, LLDP, ...). The returned slice aliases
// data; it may still hold link-layer padding or an FCS after the IP packet,
// so trust the IP length fields, not len(ip). Network does not allocate.
func Network(lt LinkType, data []byte) (ip []byte, info LinkInfo, ok bool) {
	switch lt {
	case LinkTypeEthernet:
		if len(data) < ethernetHeaderLen {
			return nil, info, false
		}
		et := binary.BigEndian.Uint16(data[12:])
		p := data[ethernetHeaderLen:]
		// An 802.3 length field instead of an EtherType: IP can only be
		// there behind an LLC/SNAP header with the zero OUI (RFC 1042).
		if et <= 1500 {
			if len(p) < snapHeaderLen || p[0] != 0xaa || p[1] != 0xaa || p[2] != 0x03 ||
				p[3] != 0 || p[4] != 0 || p[5] != 0 {
				return nil, info, false
			}
			et = binary.BigEndian.Uint16(p[6:])
			p = p[snapHeaderLen:]
		}
		return etherPayload(et, p, info)

	case LinkTypeLinuxSLL:
		if len(data) < sllHeaderLen {
			return nil, info, false
		}
		pkttype := binary.BigEndian.Uint16(data[0:])
		if pkttype <= 0xff {
			info.PktType = uint8(pkttype)
			info.Direction = pktTypeDirection(info.PktType)
		}
		info.HAType = binary.BigEndian.Uint16(data[2:])
		return etherPayload(binary.BigEndian.Uint16(data[14:]), data[sllHeaderLen:], info)

	case LinkTypeLinuxSLL2:
		if len(data) < sll2HeaderLen {
			return nil, info, false
		}
		info.Ifindex = int(binary.BigEndian.Uint32(data[4:]))
		info.HAType = binary.BigEndian.Uint16(data[8:])
		info.PktType = data[10]
		info.Direction = pktTypeDirection(info.PktType)
		return etherPayload(binary.BigEndian.Uint16(data[0:]), data[sll2HeaderLen:], info)

	case LinkTypeRaw, LinkTypeRawBSD, LinkTypeRawOpenBSD:
		if len(data) == 0 {
			return nil, info, false
		}
		switch data[0] >> 4 {
		case 4:
			info.EtherType = EtherTypeIPv4
		case 6:
			info.EtherType = EtherTypeIPv6
		default:
			return nil, info, false
		}
		return data, info, true

	case LinkTypeIPv4:
		return ipPayload(EtherTypeIPv4, data, info)

	case LinkTypeIPv6:
		return ipPayload(EtherTypeIPv6, data, info)

	case LinkTypeNull, LinkTypeLoop:
		if len(data) < nullHeaderLen {
			return nil, info, false
		}
		// LOOP is always big-endian. NULL is in the byte order of the
		// machine that wrote the file, which need not be the one that
		// wrote the file header (a file can be converted), so try both:
		// the valid values are small, so the orders cannot be confused.
		et := bsdFamily(binary.BigEndian.Uint32(data))
		if et == 0 && lt == LinkTypeNull {
			et = bsdFamily(binary.LittleEndian.Uint32(data))
		}
		return ipPayload(et, data[nullHeaderLen:], info)
	}
	return nil, info, false
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
