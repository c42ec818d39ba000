package snifftest

import (
	"encoding/binary"
	"net/netip"

	"github.com/rstwatch/rstwatch/sniff"
)

// IPv4Segment builds an IPv4 TCP segment from src to dst with the given
// flags and sequence number, no payload, and a TCP data offset of doff
// 32-bit words (5 is a plain header; less does not decode). The IP header
// checksum is set, as a raw socket must send it; the TCP checksum is not.
func IPv4Segment(src, dst netip.AddrPort, flags sniff.TCPFlags, seq uint32, doff byte) []byte {
	b := make([]byte, 40)
	b[0], b[8], b[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(b[2:], 40)
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(b[12:], s4[:])
	copy(b[16:], d4[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
	tcp := b[20:]
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12], tcp[13] = doff<<4, byte(flags)
	return b
}

// IPv6Segment is IPv4Segment over IPv6 (hop limit 64, no extension
// headers). Both addresses must be IPv6.
func IPv6Segment(src, dst netip.AddrPort, flags sniff.TCPFlags, seq uint32, doff byte) []byte {
	tcp := IPv4Segment(netip.AddrPortFrom(netip.IPv4Unspecified(), src.Port()), netip.AddrPortFrom(netip.IPv4Unspecified(), dst.Port()), flags, seq, doff)[20:]
	b := make([]byte, 40, 40+len(tcp))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(tcp)))
	b[6], b[7] = 6, 64
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, tcp...)
}
