package explain

import (
	"net/netip"
	"time"

	"github.com/rstwatch/rstwatch/sniff"
)

// trackerSlots is the size of each of a Tracker's tables (a power of two).
// A handshake is remembered until a later one lands in its slot: with 8192
// slots and SYNs retransmitted after 1 s, retransmissions are still seen at
// a few thousand new connections a second.
const (
	trackerBits  = 13
	trackerSlots = 1 << trackerBits
)

// Tracker remembers, in fixed memory and without allocating, the SYNs and
// SYN-ACKs a capture saw (so one sent again is recognised: same 4-tuple and
// sequence number, KERNEL-NOTES fact 20) and where each connection's FINs
// were (so a reset answering data sent after a FIN is recognised, fact 21).
// The zero value is ready to use; it is about 260 KiB. Not safe for
// concurrent use: one per capture loop.
type Tracker struct {
	syns [trackerSlots]synSlot
	fins [trackerSlots]finSlot
	// finSeen marks the fins slots a FIN was ever recorded in, indexed by
	// a hash of the ports alone. AfterFIN runs on every reset; in a storm
	// most connections never sent a FIN, and this 1 KiB, which stays in
	// the CPU's cache, answers for them without the full hash and a cache
	// miss in fins.
	finSeen [trackerSlots / 64]uint64
}

type synSlot struct {
	key   uint64 // fingerprint of 4-tuple, sequence number and SYN-ACK bit; 0: empty
	first int64  // when it was first sent, Unix nanoseconds
	n     uint32 // times sent
}

type finSlot struct {
	key uint64 // fingerprint of the FIN sender's 4-tuple; 0: empty
	seq uint32 // sequence number of the FIN itself
}

// Handshake records a SYN or SYN-ACK (other segments are ignored: n is 0)
// and returns how many times it has been sent, this one included, and
// when it was first seen. n is 2 at the first retransmission.
func (t *Tracker) Handshake(s *sniff.Segment, at time.Time) (n int, first time.Time) {
	if !s.Flags.Has(sniff.FlagSYN) || s.Flags.Has(sniff.FlagRST) || s.ICMP.Valid() {
		return 0, time.Time{}
	}
	extra := uint64(s.Seq)
	if s.Flags.Has(sniff.FlagACK) {
		extra |= 1 << 32
	}
	k := fingerprint(s.Src, s.Dst, extra)
	slot := &t.syns[k&(trackerSlots-1)]
	now := at.UnixNano()
	if slot.key != k {
		*slot = synSlot{key: k, first: now, n: 0}
	}
	if slot.n < ^uint32(0) {
		slot.n++
	}
	return int(slot.n), time.Unix(0, slot.first)
}

// Answered forgets the handshake that s (a SYN-ACK) answers, so a later
// SYN-ACK retransmission is still recognised but a SYN sent again after an
// answer is not mistaken for an unanswered one. It is called for every
// SYN-ACK; a reset answering a SYN needs nothing (the connection is over).
func (t *Tracker) Answered(s *sniff.Segment) {
	if !s.Flags.Has(sniff.FlagSYN|sniff.FlagACK) || s.ICMP.Valid() {
		return
	}
	k := fingerprint(s.Dst, s.Src, uint64(s.Ack-1))
	if slot := &t.syns[k&(trackerSlots-1)]; slot.key == k {
		*slot = synSlot{}
	}
}

// FIN records where the FIN of s (a segment with FIN) sits in its
// sender's sequence space.
func (t *Tracker) FIN(s *sniff.Segment) {
	if !s.Flags.Has(sniff.FlagFIN) || s.Flags.Has(sniff.FlagRST) || s.ICMP.Valid() {
		return
	}
	k := fingerprint(s.Src, s.Dst, 0)
	t.fins[k&(trackerSlots-1)] = finSlot{key: k, seq: s.Seq + uint32(s.PayloadLen)}
	i := portsSlot(s)
	t.finSeen[i/64] |= 1 << (i % 64)
}

// portsSlot is a connection's bit in finSeen.
func portsSlot(s *sniff.Segment) uint32 {
	x := uint32(s.Src.Port())<<16 | uint32(s.Dst.Port())
	return (x * 2654435761) >> (32 - trackerBits)
}

// AfterFIN reports whether s, a reset, comes from a socket that had sent
// its FIN on this connection: the reset's sequence number is where the FIN
// was, or just past it. A stateless reset carries the acknowledgement of
// the segment it answers (RFC 9293 section 3.10.7.1), so the peer had
// either acknowledged the FIN (+1) or sent its data before the FIN reached
// it (the keep-alive race: +0).
func (t *Tracker) AfterFIN(s *sniff.Segment) bool {
	if i := portsSlot(s); t.finSeen[i/64]&(1<<(i%64)) == 0 {
		return false
	}
	k := fingerprint(s.Src, s.Dst, 0)
	slot := &t.fins[k&(trackerSlots-1)]
	return slot.key == k && (s.Seq == slot.seq || s.Seq == slot.seq+1)
}

// fingerprint hashes a connection's endpoints and extra; it is never 0,
// the mark of an empty slot.
func fingerprint(src, dst netip.AddrPort, extra uint64) uint64 {
	return sniff.TupleHash(src.Addr(), dst.Addr(), uint64(src.Port())<<16|uint64(dst.Port()), extra)
}
