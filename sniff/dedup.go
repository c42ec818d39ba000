package sniff

import (
	"encoding/binary"
	"math/bits"
	"time"
)

// DefaultDedupWindow is how long a reset seen on one interface suppresses
// the same reset seen on another. Forwarding takes microseconds; a client's
// SYN retransmission (which draws an identical reset) comes a second later
// and on the same interface, so it is never suppressed.
const DefaultDedupWindow = 100 * time.Millisecond

const dedupSlots = 4096 // power of two

// Dedup reports a forwarded segment once: a routing or bridging host sees
// the same reset on every interface it crosses (KERNEL-NOTES fact 3), with
// the same 4-tuple, sequence numbers and flags, and a TTL that differs. cBPF
// cannot remember packets, so this is done in user space. The zero value is
// ready to use, holds a fixed amount of memory and never allocates.
//
// It runs on every packet of a storm, so a slot holds a 64-bit hash of the
// segment instead of the segment's 45 bytes: the table is 96 KiB and stays
// in the CPU's cache, where the full keys took 288 KiB and a cache miss a
// packet. Two different segments are taken for one only if their hashes
// are equal, they come on different interfaces and within the window: with
// a 64-bit hash that is about one pair in 10^19.
type Dedup struct {
	// Window overrides DefaultDedupWindow when non-zero.
	Window time.Duration
	slots  [dedupSlots]dedupSlot
}

type dedupSlot struct {
	sum     uint64 // segmentHash; 0: empty
	at      int64  // capture time, Unix ns
	ifindex int
}

// Duplicate reports whether e is a copy, seen on another interface within
// the window, of a segment already reported; otherwise it remembers e.
func (d *Dedup) Duplicate(e *Event) bool {
	sum := segmentHash(&e.Segment)
	win := int64(d.Window)
	if win == 0 {
		win = int64(DefaultDedupWindow)
	}
	now := e.Time.UnixNano()
	slot := &d.slots[sum&(dedupSlots-1)]
	if slot.sum == sum && slot.ifindex != e.Ifindex {
		if dt := now - slot.at; dt < win && dt > -win {
			return true
		}
	}
	*slot = dedupSlot{sum: sum, at: now, ifindex: e.Ifindex}
	return false
}

// segmentHash hashes what stays the same when a segment is forwarded:
// addresses, ports, sequence numbers and flags (not the TTL), a few
// multiplications over 64-bit words (the folded multiply of wyhash), never
// 0.
func segmentHash(s *Segment) uint64 {
	const (
		k0 = 0xa0761d6478bd642f
		k1 = 0xe7037ed1a0b428db
		k2 = 0x8ebc6af09c88c6e3
		k3 = 0x589965cc75374cc3
	)
	src, dst := s.Src.Addr().As16(), s.Dst.Addr().As16()
	be := binary.BigEndian
	ports := uint64(s.Src.Port())<<48 | uint64(s.Dst.Port())<<32 | uint64(s.Flags)
	if s.ICMP.Valid() {
		// An ICMP error quotes the SYN it answers: it is not its copy.
		ports |= uint64(s.ICMP.Type+1) << 8
	}
	nums := uint64(s.Seq)<<32 | uint64(s.Ack)
	h := fold(be.Uint64(src[:8])^k0, be.Uint64(src[8:])^k1)
	h ^= fold(be.Uint64(dst[:8])^k2, be.Uint64(dst[8:])^k3)
	h = fold(h^ports^k1, nums^k0)
	if h == 0 {
		h = 1
	}
	return h
}

// fold multiplies a and b to 128 bits and xors the halves.
func fold(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}
