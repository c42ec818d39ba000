package metrics

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/metrics/promtest"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// TestObserveFailures: an unanswered connection counts once (at its
// first retransmission), each ICMP error counts, both under the server's
// port in rstwatch_failed_connections_total; resets stay in
// rstwatch_resets_total.
func TestObserveFailures(t *testing.T) {
	fs, err := proc.NewFS("")
	if err != nil {
		t.Fatal(err)
	}
	m := New(fs)
	var e sniff.Event
	e.Direction = sniff.Out
	e.Src, e.Dst = netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:8080")
	for n := 2; n <= 4; n++ {
		m.Observe(&e, &explain.Verdict{Kind: explain.KindUnanswered, Cause: explain.Timeout, Attempts: n, First: time.Now()})
	}
	e.Direction = sniff.In
	for range 2 {
		m.Observe(&e, &explain.Verdict{Kind: explain.KindUnreachable, Cause: explain.Rejected})
	}
	e.Src, e.Dst = e.Dst, e.Src
	m.Observe(&e, &explain.Verdict{Kind: explain.KindReset, Cause: explain.Closed})
	fams, err := promtest.Parse(string(m.AppendExposition(nil)))
	if err != nil {
		t.Fatal(err)
	}
	f := fams["rstwatch_failed_connections_total"]
	if f == nil {
		t.Fatal("no rstwatch_failed_connections_total")
	}
	for key, want := range map[string]float64{
		`rstwatch_failed_connections_total{cause="timeout",direction="out",kind="unanswered",port="8080",}`:  1,
		`rstwatch_failed_connections_total{cause="rejected",direction="in",kind="unreachable",port="8080",}`: 2,
	} {
		if got := f.Samples[key]; got != want {
			t.Errorf("%s = %v, want %v (all: %v)", key, got, want, f.Samples)
		}
	}
	r := fams["rstwatch_resets_total"]
	if got := r.Samples[`rstwatch_resets_total{cause="closed",direction="in",port="8080",}`]; got != 1 || len(r.Samples) != 1 {
		t.Errorf("resets: %v, want the closed one only", r.Samples)
	}
}
