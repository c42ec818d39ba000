package render

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// stormEvents are resets as a storm brings them: IPv4 and IPv6 in turn,
// every one with its own port, explained from the packet alone.
func stormEvents(n int) ([]sniff.Event, explain.Verdict) {
	t0 := time.Date(2026, 11, 21, 15, 13, 13, 0, time.UTC)
	src4, dst4 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	src6, dst6 := netip.MustParseAddr("fd52::1"), netip.MustParseAddr("fd52::2")
	evs := make([]sniff.Event, n)
	for i := range evs {
		e := &evs[i]
		e.Time, e.Ifname, e.Ifindex, e.Direction = t0.Add(time.Duration(i)*1777*time.Nanosecond), "veth0", 2, sniff.In
		e.Family, e.Src, e.Dst = sniff.IPv4, netip.AddrPortFrom(src4, uint16(1024+i)), netip.AddrPortFrom(dst4, 7211)
		if i%2 == 1 {
			e.Family, e.Src, e.Dst = sniff.IPv6, netip.AddrPortFrom(src6, uint16(1024+i)), netip.AddrPortFrom(dst6, 7211)
		}
		e.Seq, e.Ack, e.Flags, e.TTL = uint32(i)*2654435761, uint32(i), sniff.FlagRST|sniff.FlagACK, 64
	}
	v := explain.Verdict{Cause: explain.Stale, Sampled: true, Sender: explain.Sender{Local: explain.False}, Target: explain.Target{Local: explain.True}}
	return evs, v
}

// BenchmarkAppendJSONStorm is the JSON line of one reset in a storm.
func BenchmarkAppendJSONStorm(b *testing.B) {
	evs, v := stormEvents(4096)
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf = AppendJSON(buf[:0], &evs[i&4095], &v, nil)
		i++
	}
}

// TestAppendJSONTime: the fast formatter writes what the layout does, over
// the years a capture can hold and the ones it falls back for.
func TestAppendJSONTime(t *testing.T) {
	loc := time.FixedZone("x", 5*3600+30*60)
	times := []time.Time{
		{}, time.Unix(0, 0), time.Unix(0, 1), time.Unix(1700000000, 999999999),
		time.Date(2026, 12, 31, 23, 59, 59, 123456789, loc), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := range 10000 {
		times = append(times, time.Unix(int64(i)*987654321%4102444800, int64(i)*7919%1e9))
	}
	for _, tm := range times {
		if got, want := string(appendJSONTime(nil, tm)), tm.UTC().Format(JSONTime); got != want {
			t.Fatalf("%v: got %s, want %s", tm, got, want)
		}
	}
}

func BenchmarkJSONTime(b *testing.B) {
	tm := time.Date(2026, 11, 21, 15, 13, 13, 476095123, time.UTC)
	buf := make([]byte, 0, 64)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			buf = appendJSONTime(buf[:0], tm)
		}
	})
	b.Run("layout", func(b *testing.B) {
		for b.Loop() {
			buf = tm.UTC().AppendFormat(buf[:0], JSONTime)
		}
	})
}

// TestRendererSameLines: the Renderer's cache changes nothing in a line,
// over many addresses that collide in it, zones and invalid addresses
// included.
func TestRendererSameLines(t *testing.T) {
	var r Renderer
	evs, v := stormEvents(64)
	addrs := []netip.Addr{{}, netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("::ffff:192.0.2.1"),
		netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"), netip.IPv6Unspecified()}
	for i := range 3000 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), netip.AddrFrom16([16]byte{0xfd, 0x52, 15: byte(i), 13: byte(i >> 4)}))
	}
	for i, a := range addrs {
		e := &evs[i%len(evs)]
		e.Src = netip.AddrPortFrom(a, 80)
		e.Dst = netip.AddrPortFrom(addrs[(i*7)%len(addrs)], 443)
		for range 2 { // miss, then hit
			if got, want := string(r.AppendJSON(nil, e, &v, nil)), string(AppendJSON(nil, e, &v, nil)); got != want {
				t.Fatalf("%v: Renderer.AppendJSON\n%s\nwant\n%s", a, got, want)
			}
			if got, want := string(r.AppendText(nil, e, &v, nil)), string(AppendText(nil, e, &v, nil)); got != want {
				t.Fatalf("%v: Renderer.AppendText\n%s\nwant\n%s", a, got, want)
			}
		}
	}
	// The head and the second it remembers: lines that change one field
	// of the head at a time, or the time within a second, across seconds,
	// before 1970 and past 9999 (other layouts), and interface names that
	// are hostile or too long to keep.
	times := []time.Time{time.Unix(1700000000, 1), time.Unix(1700000000, 999999999), time.Unix(1700000001, 5),
		time.Unix(-1, 5), time.Unix(-1, 6), time.Date(10000, 1, 1, 0, 0, 0, 7, time.UTC), time.Unix(1700000001, 6)}
	names := []string{"lo", "eth0", "eth0\x1b[31m", strings.Repeat("\u202e", 100), "lo"}
	e := evs[0]
	for i := range 500 {
		switch i % 5 {
		case 0:
			e.Time = times[i/5%len(times)]
		case 1:
			e.Ifname = names[i/5%len(names)]
		case 2:
			e.Ifindex = i % 3
		case 3:
			e.Direction = sniff.Direction(i % 4)
		case 4:
			e.Family = sniff.Family(i%2 + 1)
		}
		if got, want := string(r.AppendJSON(nil, &e, &v, nil)), string(AppendJSON(nil, &e, &v, nil)); got != want {
			t.Fatalf("line %d: Renderer.AppendJSON\n%s\nwant\n%s", i, got, want)
		}
	}
	buf := make([]byte, 0, 2048)
	if n := testing.AllocsPerRun(1000, func() { buf = r.AppendJSON(buf[:0], &evs[0], &v, nil) }); n != 0 {
		t.Errorf("Renderer.AppendJSON allocates %v times", n)
	}
}

// BenchmarkRendererJSONStorm is BenchmarkAppendJSONStorm with the cache.
func BenchmarkRendererJSONStorm(b *testing.B) {
	evs, v := stormEvents(4096)
	var r Renderer
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf = r.AppendJSON(buf[:0], &evs[i&4095], &v, nil)
		i++
	}
}
