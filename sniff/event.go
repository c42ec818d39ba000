package sniff

import (
	"time"
)

// Direction tells which way a packet went relative to this host (or to the
// network namespace being watched). The zero value is invalid.
//
//enumcheck:exhaustive
type Direction uint8

// Directions, spelled as the JSON "direction" field.
const (
	_ Direction = iota
	// In: received from another host.
	In
	// Out: this host sent it to another host.
	Out
	// Local: both ends are on this host (loopback).
	Local
	// Unknown: an offline capture that does not record direction.
	Unknown
)

// String returns "in", "out", "local" or "unknown".
func (d Direction) String() string {
	switch d {
	case In:
		return "in"
	case Out:
		return "out"
	case Local:
		return "local"
	}
	return "unknown"
}

// Link-layer facts from sockaddr_ll (packet(7)).
const (
	PacketHost      = 0   // PACKET_HOST: addressed to this host
	PacketBroadcast = 1   // PACKET_BROADCAST
	PacketMulticast = 2   // PACKET_MULTICAST
	PacketOtherHost = 3   // PACKET_OTHERHOST: seen in promiscuous or forwarding mode
	PacketOutgoing  = 4   // PACKET_OUTGOING: sent by this host
	HATypeLoopback  = 772 // ARPHRD_LOOPBACK
)

// DirectionOf derives the direction of a packet from its sockaddr_ll packet
// type and hardware type. Every packet on loopback has both ends on this host
// (KERNEL-NOTES fact 12); elsewhere PACKET_OUTGOING means this host sent it.
func DirectionOf(pktType uint8, haType uint16) Direction {
	switch {
	case haType == HATypeLoopback:
		return Local
	case pktType == PacketOutgoing:
		return Out
	default:
		return In
	}
}

// Packet is one captured packet as the kernel delivered it. Data aliases the
// Sniffer's buffer and is valid until the next read.
type Packet struct {
	Time    time.Time // kernel receive timestamp
	Ifindex int
	PktType uint8  // sll_pkttype
	HAType  uint16 // sll_hatype
	// Proto is sll_protocol, the ethertype (0x0800 or 0x86dd after the
	// filter), in host byte order.
	Proto uint16
	Len   int    // length of the IP packet on the wire
	Data  []byte // captured bytes, starting at the IP header
	// VLAN says that the kernel took an 802.1Q or 802.1ad tag off the
	// frame (TP_STATUS_VLAN_VALID); VLANTCI and VLANTPID are the tag's
	// control information and protocol ID (0 when the kernel did not
	// report it: 0x8100).
	VLAN     bool
	VLANTCI  uint16
	VLANTPID uint16
}

// Event is a decoded TCP segment with where and when it was seen. Data
// aliases the capture buffer and is valid until the next Next call.
type Event struct {
	Time      time.Time
	Ifindex   int
	Ifname    string
	Direction Direction
	// Len is the wire length of the IP packet in Data.
	Len int
	// Data is the IP packet that carries the segment: for a segment inside
	// a tunnel, the inner one.
	Data []byte
	// Encap holds the layers the segment was found inside (VLAN tags,
	// tunnels), outermost first; the Segment's addresses are the inner
	// connection's.
	Encap Encap
	Segment
}
