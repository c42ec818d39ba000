package sniff_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// dedupEvent is a reset from 192.0.2.1:7211 to 192.0.2.2:port on ifindex
// at t, decoded from its packet.
func dedupEvent(port uint16, seq uint32, ifindex int, t time.Time) *sniff.Event {
	ip := snifftest.IPv4Segment(netip.MustParseAddrPort("192.0.2.1:7211"), netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), port), sniff.FlagRST, seq, 5)
	return decodedEvent(ip, ifindex, t)
}

func decodedEvent(ip []byte, ifindex int, t time.Time) *sniff.Event {
	e := &sniff.Event{Time: t, Ifindex: ifindex, Data: ip}
	if err := e.Segment.Decode(ip); err != nil {
		panic(err)
	}
	return e
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
		{"forwarded_copy", forwarded(dedupEvent(40000, 1, 3, t0.Add(20*time.Microsecond))), true},
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
	// IPv6, and a copy that differs in a byte that is hashed.
	src6, dst6 := netip.MustParseAddrPort("[2001:db8::1]:7211"), netip.MustParseAddrPort("[2001:db8::2]:40000")
	v6 := func(ifindex int, at time.Duration) *sniff.Event {
		return decodedEvent(snifftest.IPv6Segment(src6, dst6, sniff.FlagRST, 9, 5), ifindex, t0.Add(at))
	}
	if d.Duplicate(v6(2, time.Second)) || !d.Duplicate(forwarded(v6(3, time.Second+time.Microsecond))) {
		t.Error("IPv6: the first copy was a duplicate or the forwarded one was not")
	}
	other := v6(3, time.Second+2*time.Microsecond)
	other.Data[39]++ // the last byte of the destination address
	if err := other.Segment.Decode(other.Data); err != nil {
		t.Fatal(err)
	}
	if d.Duplicate(other) {
		t.Error("IPv6: another destination address was taken for a duplicate")
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

// forwarded makes e the copy a router forwards: the TTL (or hop limit)
// one lower.
func forwarded(e *sniff.Event) *sniff.Event {
	if e.Family == sniff.IPv4 {
		e.Data[8]--
	} else {
		e.Data[7]--
	}
	if err := e.Segment.Decode(e.Data); err != nil {
		panic(err)
	}
	return e
}

// BenchmarkDedup is a storm: every segment new, IPv4 and IPv6 in turn.
func BenchmarkDedup(b *testing.B) {
	var d sniff.Dedup
	t0 := time.Unix(1700000000, 0)
	events := []*sniff.Event{
		dedupEvent(1, 1, 1, t0),
		decodedEvent(snifftest.IPv6Segment(netip.MustParseAddrPort("[2001:db8::1]:7211"), netip.MustParseAddrPort("[2001:db8::2]:40000"), sniff.FlagRST, 1, 5), 1, t0),
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		ev := events[i&1]
		// A new sequence number in the packet and the decoded segment.
		ev.Seq = uint32(i)
		ev.Data[ev.TCPOffset+4], ev.Data[ev.TCPOffset+7] = byte(i>>24), byte(i)
		d.Duplicate(ev)
	}
}
