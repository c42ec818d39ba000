package sniff_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/sniff"
)

// dedupEvent is a reset from 192.0.2.1:7211 to 192.0.2.2:port on ifindex
// at t.
func dedupEvent(port uint16, seq uint32, ifindex int, t time.Time) *sniff.Event {
	return &sniff.Event{Time: t, Ifindex: ifindex, Segment: sniff.Segment{
		Family: sniff.IPv4,
		Src:    netip.MustParseAddrPort("192.0.2.1:7211"),
		Dst:    netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), port),
		Seq:    seq, Flags: sniff.FlagRST,
	}}
}

func TestDedup(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	var d sniff.Dedup
	steps := []struct {
		name string
		e    *sniff.Event
		dup  bool
	}{
		{"first", dedupEvent(40000, 1, 2, t0), false},
		{"forwarded_copy", dedupEvent(40000, 1, 3, t0.Add(20*time.Microsecond)), true},
		// A retransmitted SYN draws an identical reset on the same
		// interface: that is a new reset.
		{"same_interface", dedupEvent(40000, 1, 2, t0.Add(time.Millisecond)), false},
		{"other_sequence", dedupEvent(40000, 2, 2, t0.Add(time.Millisecond)), false},
		{"other_port", dedupEvent(40001, 1, 2, t0.Add(time.Millisecond)), false},
		{"after_window", dedupEvent(40000, 1, 4, t0.Add(time.Millisecond+sniff.DefaultDedupWindow)), false},
	}
	for _, s := range steps {
		if got := d.Duplicate(s.e); got != s.dup {
			t.Errorf("%s: Duplicate = %v, want %v", s.name, got, s.dup)
		}
	}
	// Many distinct segments: none is taken for another.
	var fresh sniff.Dedup
	for i := range 200000 {
		if fresh.Duplicate(dedupEvent(uint16(i), uint32(i*7919), i%3, t0)) {
			t.Fatalf("segment %d taken for a duplicate", i)
		}
	}
	e := dedupEvent(1, 1, 1, t0)
	if n := testing.AllocsPerRun(1000, func() { e.Seq++; d.Duplicate(e) }); n != 0 {
		t.Errorf("Duplicate allocates %v times, want 0", n)
	}
}

// BenchmarkDedup is a storm: every segment new.
func BenchmarkDedup(b *testing.B) {
	var d sniff.Dedup
	e := dedupEvent(1, 1, 1, time.Unix(1700000000, 0))
	v6 := dedupEvent(1, 1, 1, time.Unix(1700000000, 0))
	v6.Src = netip.MustParseAddrPort("[2001:db8::1]:7211")
	v6.Dst = netip.MustParseAddrPort("[2001:db8::2]:40000")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		ev := e
		if i&1 == 0 {
			ev = v6
		}
		ev.Dst = netip.AddrPortFrom(ev.Dst.Addr(), uint16(i))
		ev.Seq = uint32(i)
		d.Duplicate(ev)
	}
}
