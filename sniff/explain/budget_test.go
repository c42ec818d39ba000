package explain

import (
	"net/netip"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newBudget(10)
	allowed := 0
	for i := range 100 { // 100 resets in 10 ms: the burst of 10 passes
		if b.allow(t0.Add(time.Duration(i) * 100 * time.Microsecond)) {
			allowed++
		}
	}
	if allowed != 10 || b.sampled != 90 {
		t.Fatalf("burst: allowed %d, sampled %d; want 10 and 90", allowed, b.sampled)
	}
	// Half a second later five tokens are back.
	allowed = 0
	for range 20 {
		if b.allow(t0.Add(510 * time.Millisecond)) {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("after 0.5s: allowed %d, want 5", allowed)
	}
	// A timestamp from the past (another interface's clock skew) neither
	// refills nor breaks the bucket.
	if b.allow(t0) {
		t.Fatal("a past timestamp refilled the bucket")
	}
	unlimited := newBudget(-1)
	for range 1000 {
		if !unlimited.allow(t0) {
			t.Fatal("a negative budget refused")
		}
	}
	var zero budget
	if zero.allow(t0) {
		t.Fatal("the zero budget allowed")
	}
	unlimited.missed()
	if !unlimited.allow(t0) {
		t.Fatal("a miss limited an unlimited budget")
	}
}

// TestBudgetMisses: lookups that find nothing cost missCost tokens, so a
// storm of them is looked up at a tenth of the rate; hits keep the rate.
func TestBudgetMisses(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		miss bool
		want int
	}{{false, 1000 + 2000}, {true, (1000 + 2000) / missCost}} {
		b := newBudget(1000)
		allowed := 0
		// 2 s of 100,000 resets a second.
		for i := range 200000 {
			if b.allow(t0.Add(time.Duration(i) * 10 * time.Microsecond)) {
				allowed++
				if tc.miss {
					b.missed()
				}
			}
		}
		if allowed < tc.want*95/100 || allowed > tc.want*105/100 {
			t.Errorf("misses %v: %d lookups in 2 s, want about %d", tc.miss, allowed, tc.want)
		}
	}
}

// TestAddrSet: the set answers alike as a list and, past addrSetList
// addresses, as a map; an IPv4-mapped address is its IPv4 address.
func TestAddrSet(t *testing.T) {
	for _, n := range []int{1, addrSetList, addrSetList + 1, 100} {
		var m addrSet
		for i := range n {
			m.add(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
			m.add(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})) // again: no duplicate
		}
		if got := len(m.list) + len(m.big); got != n {
			t.Errorf("n=%d: holds %d addresses", n, got)
		}
		if (m.big != nil) != (n > addrSetList) {
			t.Errorf("n=%d: map in use is %v", n, m.big != nil)
		}
		for i := range n {
			a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			if !m.has(a) {
				t.Errorf("n=%d: %v missing", n, a)
			}
			if mapped := netip.AddrFrom16(a.As16()); !m.has(mapped.Unmap()) {
				t.Errorf("n=%d: %v (mapped) missing", n, mapped)
			}
		}
		if m.has(netip.MustParseAddr("10.1.0.0")) || m.has(netip.MustParseAddr("::1")) {
			t.Errorf("n=%d: has an address never added", n)
		}
	}
}

// TestIsLocalCache: the capture path's cached answer is IsLocal's, also
// after the namespace's addresses change and for more addresses than the
// cache holds.
func TestIsLocalCache(t *testing.T) {
	x := &Explainer{}
	var before, after addrSet
	before.add(netip.MustParseAddr("10.0.0.1"))
	after.add(netip.MustParseAddr("10.0.0.2"))
	addrs := []netip.Addr{
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("::ffff:10.0.0.1"), netip.MustParseAddr("::1"), netip.MustParseAddr("192.0.2.9"),
	}
	for _, set := range []*addrSet{&before, &after} {
		x.locals.Store(set)
		for range 3 {
			for _, a := range addrs {
				if got, want := x.isLocal(a), x.IsLocal(a); got != want {
					t.Errorf("isLocal(%v) = %v, IsLocal %v", a, got, want)
				}
			}
		}
	}
	if !x.isLocal(netip.MustParseAddr("10.0.0.2")) || x.isLocal(netip.MustParseAddr("10.0.0.1")) {
		t.Error("the cache kept the answers of the old address set")
	}
}
