// Package savefile reads and writes pcap and pcapng capture files.
//
// The reader understands classic pcap (draft-ietf-opsawg-pcap: microsecond
// and nanosecond magic numbers, either byte order) and pcapng
// (draft-ietf-opsawg-pcapng: several sections of either byte order, several
// interfaces with their own if_tsresol and if_tsoffset, Enhanced, Simple and
// obsolete Packet Blocks). Blocks it does not need are skipped. The format is
// chosen from the magic number alone, never from the file name.
//
// Reading streams: a Reader holds one packet buffer, grown as data actually
// arrives and never beyond MaxBlockSize, so a hostile length field is an
// error rather than an allocation, and a pcapng section may define at most
// MaxInterfaces interfaces (names cut to MaxInterfaceName bytes), so a file
// of any size is read in constant memory. Truncated or corrupt input makes
// Next return an error that wraps ErrCorrupt or io.ErrUnexpectedEOF (ErrLimit
// beyond MaxInterfaces) and names the byte offset of the bad record or block.
//
// Link strips the link-layer header of the link types that carry IP in
// practice (Ethernet, Linux cooked SLL and SLL2, raw IP, BSD loopback, PPP
// and PPPoE, Cisco HDLC, FDDI, Token Ring, IEEE 802.11 with or without
// radiotap) and says what protocol follows; package sniff peels the rest.
// Network does the same and also strips VLAN tags and LLC/SNAP, returning
// the bare IPv4 or IPv6 packet when it lies right behind them.
//
// The writers store the bare IP packets that an AF_PACKET SOCK_DGRAM socket
// captures: PcapNGWriter as LINKTYPE_RAW with one Interface Description
// Block per interface and nanosecond timestamps, PcapWriter as nanosecond
// pcap with LINKTYPE_LINUX_SLL2 so that the interface index and direction
// survive. Both buffer their output and write every block with a single
// Write, and neither allocates per packet in steady state.
package savefile
