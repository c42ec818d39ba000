//go:build linux

package main

import (
	"encoding/binary"
	"net/netip"
)

// Segment kinds the storm sends.
const (
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// Header sizes of the crafted packets: no IP options, no TCP options.
const (
	ipv4Len = 20
	ipv6Len = 40
	tcpLen  = 20
)

// crafter builds the storm's packets in place: each call writes the i-th
// segment of the storm into a caller-owned buffer, varying ports and
// sequence numbers so that no two packets of a storm are the same (a
// sniffer's deduplication must not hide any).
type crafter struct {
	src4, dst4 netip.Addr
	src6, dst6 netip.Addr
	flags      uint8 // tcpRST|tcpACK or tcpSYN
}

// packet writes segment i into b (at least 60 bytes) and returns its
// length and whether it is IPv6. Even i are IPv4, odd i IPv6.
func (c *crafter) packet(b []byte, i uint64) (n int, v6 bool) {
	v6 = i&1 == 1
	sport := uint16(1024 + i%60000)
	dport := uint16(20000 + (i/60000)%20000)
	seq := uint32(i * 2654435761)
	var tcp []byte
	if v6 {
		n = ipv6Len + tcpLen
		ip := b[:ipv6Len]
		binary.BigEndian.PutUint32(ip[0:], 6<<28|uint32(i&0xfffff)) // version, flow label
		binary.BigEndian.PutUint16(ip[4:], tcpLen)                  // payload length
		ip[6] = 6                                                   // next header: TCP
		ip[7] = 64                                                  // hop limit
		a, d := c.src6.As16(), c.dst6.As16()
		copy(ip[8:24], a[:])
		copy(ip[24:40], d[:])
		tcp = b[ipv6Len:n]
	} else {
		n = ipv4Len + tcpLen
		ip := b[:ipv4Len]
		ip[0] = 0x45 // version 4, IHL 5
		ip[1] = 0
		binary.BigEndian.PutUint16(ip[2:], uint16(n))
		binary.BigEndian.PutUint16(ip[4:], uint16(i)) // ID
		binary.BigEndian.PutUint16(ip[6:], 0x4000)    // DF
		ip[8] = 64                                    // TTL
		ip[9] = 6                                     // TCP
		ip[10], ip[11] = 0, 0
		a, d := c.src4.As4(), c.dst4.As4()
		copy(ip[12:16], a[:])
		copy(ip[16:20], d[:])
		binary.BigEndian.PutUint16(ip[10:], ^fold(sum(0, ip)))
		tcp = b[ipv4Len:n]
	}
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	var ack uint32
	if c.flags&tcpACK != 0 {
		ack = seq ^ 0x5bd1e995
	}
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = 5 << 4 // data offset
	tcp[13] = c.flags
	win := uint16(0)
	if c.flags&tcpSYN != 0 {
		win = 64240
	}
	binary.BigEndian.PutUint16(tcp[14:], win)
	tcp[16], tcp[17], tcp[18], tcp[19] = 0, 0, 0, 0 // checksum, urgent pointer
	binary.BigEndian.PutUint16(tcp[16:], ^fold(pseudo(b[:n-tcpLen], v6, tcpLen)+sum(0, tcp)))
	return n, v6
}

// pseudo returns the unfolded sum of the TCP pseudo-header (RFC 9293 3.1,
// RFC 8200 8.1) for the IP header ip.
func pseudo(ip []byte, v6 bool, tcpLength int) uint32 {
	var s uint32
	if v6 {
		s = sum(0, ip[8:40])
	} else {
		s = sum(0, ip[12:20])
	}
	return s + 6 + uint32(tcpLength)
}

// sum adds b as big-endian 16-bit words to s (RFC 1071).
func sum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

// fold folds a 32-bit sum into 16 bits with end-around carry.
func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
