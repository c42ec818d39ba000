package sniff

import (
	"encoding/binary"
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
type Dedup struct {
	// Window overrides DefaultDedupWindow when non-zero.
	Window time.Duration
	slots  [dedupSlots]dedupSlot
}

type dedupKey struct {
	src, dst     [16]byte
	sport, dport uint16
	seq, ack     uint32
	flags        TCPFlags
	icmp         uint8 // ICMP type + 1 for a quoted segment: the error is not its SYN
}

type dedupSlot struct {
	key     dedupKey
	ifindex int
	at      int64
	used    bool
}

// Duplicate reports whether e is a copy, seen on another interface within
// the window, of a segment already reported; otherwise it remembers e.
func (d *Dedup) Duplicate(e *Event) bool {
	k := dedupKey{
		src: e.Src.Addr().As16(), dst: e.Dst.Addr().As16(),
		sport: e.Src.Port(), dport: e.Dst.Port(),
		seq: e.Seq, ack: e.Ack, flags: e.Flags,
	}
	if e.ICMP.Valid() {
		k.icmp = e.ICMP.Type + 1
	}
	win := d.Window
	if win == 0 {
		win = DefaultDedupWindow
	}
	now := e.Time.UnixNano()
	slot := &d.slots[k.hash()&(dedupSlots-1)]
	if slot.used && slot.key == k && slot.ifindex != e.Ifindex {
		if dt := now - slot.at; dt < int64(win) && dt > -int64(win) {
			return true
		}
	}
	*slot = dedupSlot{key: k, ifindex: e.Ifindex, at: now, used: true}
	return false
}

// hash is FNV-1a over the key's fields.
func (k *dedupKey) hash() uint64 {
	h := uint64(14695981039346656037)
	mix := func(b []byte) {
		for _, c := range b {
			h ^= uint64(c)
			h *= 1099511628211
		}
	}
	var buf [14]byte
	mix(k.src[:])
	mix(k.dst[:])
	binary.BigEndian.PutUint16(buf[0:], k.sport)
	binary.BigEndian.PutUint16(buf[2:], k.dport)
	binary.BigEndian.PutUint32(buf[4:], k.seq)
	binary.BigEndian.PutUint32(buf[8:], k.ack)
	buf[12] = byte(k.flags)
	buf[13] = k.icmp
	mix(buf[:])
	return h
}
