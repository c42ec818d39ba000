package explain

import (
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
}
