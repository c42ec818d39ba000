package sniff

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"time"
)

// DefaultDedupWindow is how long a reset seen on one interface suppresses
// the same reset seen on another. Forwarding takes microseconds; a client's
// SYN retransmission (which draws an identical reset) comes a second later
// and on the same interface, so it is never suppressed.
const DefaultDedupWindow = 100 * time.Millisecond

// dedupSlots is the table's size (a power of two). A forwarded copy
// follows its original within microseconds, so the table needs to hold
// the last few hundred packets, not the whole window of a storm: at
// 570,000 resets a second a slot lives about 2 ms. 16 KiB stays in the
// CPU's cache, where the packets streaming through the ring pushed out a
// larger table and cost a cache miss a packet.
const dedupSlots = 1024

// Dedup reports a forwarded segment once: a routing or bridging host sees
// the same reset on every interface it crosses (KERNEL-NOTES fact 3), with
// the same 4-tuple, sequence numbers and flags, and a TTL that differs. cBPF
// cannot remember packets, so this is done in user space. The zero value is
// ready to use, holds a fixed amount of memory and never allocates.
//
// It runs on every packet of a storm, so a slot holds a 64-bit hash of the
// segment instead of the segment's 45 bytes. Two different segments are
// taken for one only if their hashes are equal, they come on different
// interfaces and within the window: with a 64-bit hash that is about one
// pair in 10^19.
type Dedup struct {
	// Window overrides DefaultDedupWindow when non-zero.
	Window time.Duration
	slots  [dedupSlots]dedupSlot
}

// dedupSlot is 16 bytes: four to a cache line.
type dedupSlot struct {
	sum     uint64 // segmentHash; 0: empty
	at      uint32 // capture time in µs (ns >> 10), modulo 2^32 (73 minutes)
	ifindex uint32
}

// Duplicate reports whether e is a copy, seen on another interface within
// the window, of a segment already reported; otherwise it remembers e.
func (d *Dedup) Duplicate(e *Event) bool {
	sum := packetHash(e)
	win := d.Window
	if win == 0 {
		win = DefaultDedupWindow
	}
	now := uint32(e.Time.UnixNano() >> 10)
	slot := &d.slots[sum&(dedupSlots-1)]
	if slot.sum == sum && slot.ifindex != uint32(e.Ifindex) {
		// Either order: interfaces' timestamps may be a little apart.
		dt := int32(now - slot.at)
		if w := int32(min(win>>10, 1<<30)); dt < w && dt > -w {
			return true
		}
	}
	*slot = dedupSlot{sum: sum, at: now, ifindex: uint32(e.Ifindex)}
	return false
}

// packetHash hashes what stays the same when e's segment is forwarded:
// for a TCP segment, the bytes of the addresses, the ports, sequence
// numbers and flags, read from the packet where the decoder found them
// (eight bytes at a time, without building netip addresses back into
// bytes: that was half of deduplication's cost); for an ICMP error (or an
// event without its packet) segmentHash. Never 0.
func packetHash(e *Event) uint64 {
	s := &e.Segment
	ip := e.Data
	if s.ICMP.Valid() || s.TCPOffset < ipv4MinimumSize || len(ip) < s.TCPOffset+14 {
		return segmentHash(s)
	}
	le := binary.LittleEndian
	t := ip[s.TCPOffset:]
	// Ports and sequence number; acknowledgement and flags.
	ps := le.Uint64(t[0:8])
	af := uint64(le.Uint32(t[8:12])) | uint64(t[13])<<32
	var h uint64
	switch {
	case s.Family == IPv4 && len(ip) >= 20:
		h = fold(le.Uint64(ip[12:20])^k0, af^k1)
	case s.Family == IPv6 && len(ip) >= 40:
		h = fold(le.Uint64(ip[8:16])^k0, le.Uint64(ip[16:24])^k1)
		h ^= fold(le.Uint64(ip[24:32])^k2, le.Uint64(ip[32:40])^k3)
		h = fold(h^af^k1, k2)
	default:
		return segmentHash(s)
	}
	h = fold(h^ps^k3, uint64(s.Family)^k0)
	if h == 0 {
		h = 1
	}
	return h
}

// segmentHash hashes what stays the same when a segment is forwarded:
// addresses, ports, sequence numbers and flags (not the TTL), never 0.
func segmentHash(s *Segment) uint64 {
	ports := uint64(s.Src.Port())<<48 | uint64(s.Dst.Port())<<32 | uint64(s.Flags)
	if s.ICMP.Valid() {
		// An ICMP error quotes the SYN it answers: it is not its copy.
		ports |= uint64(s.ICMP.Type+1) << 8
	}
	return TupleHash(s.Src.Addr(), s.Dst.Addr(), ports, uint64(s.Seq)<<32|uint64(s.Ack))
}

// TupleHash hashes two addresses (an IPv4 address and its IPv4-mapped IPv6
// form hash alike) and two words, never returning 0 (the mark of an empty
// slot in a fixed table). It is a few multiplications over 64-bit words
// (the folded multiply of wyhash): cheap enough to run several times on
// every packet of a storm, where a byte-wise hash over the same 48 bytes
// cost more than decoding the packet.
func TupleHash(src, dst netip.Addr, a, b uint64) uint64 {
	s, d := src.As16(), dst.As16()
	be := binary.BigEndian
	h := fold(be.Uint64(s[:8])^k0, be.Uint64(s[8:])^k1)
	h ^= fold(be.Uint64(d[:8])^k2, be.Uint64(d[8:])^k3)
	h = fold(h^a^k1, b^k0)
	if h == 0 {
		h = 1
	}
	return h
}

// The hashes' keys (wyhash's).
const (
	k0 = 0xa0761d6478bd642f
	k1 = 0xe7037ed1a0b428db
	k2 = 0x8ebc6af09c88c6e3
	k3 = 0x589965cc75374cc3
)

// fold multiplies a and b to 128 bits and xors the halves.
func fold(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}
