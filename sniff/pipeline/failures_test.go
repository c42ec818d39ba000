package pipeline

import (
	"bytes"
	"context"
	"net/netip"
	"testing"

	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// failuresFile opens a capture file with the filter a live capture uses.
func failuresFile(t testing.TB, file []byte) *Pipeline {
	t.Helper()
	p, err := Open(context.Background(), &Config{Read: Stdio, Stdin: bytes.NewReader(file),
		Capture: sniff.Config{Filter: filter.Options{Failures: true}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestRunFailures: a SYN sent again is reported (client first, once per
// retransmission), the FIN is not, and the reset that answers data after
// it is "closed"; Run counts the reset, Stats.Failed the other.
func TestRunFailures(t *testing.T) {
	other := netip.MustParseAddrPort("192.0.2.2:40001")
	syn := snifftest.IPv4Segment(other, server, sniff.FlagSYN, 100, 5)
	fin := snifftest.IPv4Segment(server, client, sniff.FlagFIN|sniff.FlagACK, 500, 5)
	rst := snifftest.IPv4Segment(server, client, sniff.FlagRST, 501, 5)
	p := failuresFile(t, pcapOf(t, syn, syn, fin, rst))
	var got []Event
	n, err := p.Run(context.Background(), 0, sinkFunc(func(e *Event) error {
		if e.Reported() {
			got = append(got, *e)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d events reported, want the SYN sent again and the reset", len(got))
	}
	if v := got[0].Verdict; v.Kind != explain.KindUnanswered || v.Cause != explain.Timeout || v.Attempts != 2 || got[0].Src != other {
		t.Errorf("first: %v %v attempts %d from %v", v.Kind, v.Cause, v.Attempts, got[0].Src)
	}
	if v := got[1].Verdict; v.Kind != explain.KindReset || v.Cause != explain.Closed {
		t.Errorf("second: %v %v, want a closed reset", v.Kind, v.Cause)
	}
	if st := p.Stats(); n != 1 || st.Failed != 1 {
		t.Errorf("Run = %d, Stats.Failed = %d, want 1 and 1", n, st.Failed)
	}
}

// TestRunAllocatesNothingPerFailure: SYNs sent again and resets after a
// FIN cost no allocation each.
func TestRunAllocatesNothingPerFailure(t *testing.T) {
	segs := func(n int) [][]byte {
		var out [][]byte
		for i := range n {
			c := netip.AddrPortFrom(client.Addr(), uint16(20000+i))
			syn := snifftest.IPv4Segment(c, server, sniff.FlagSYN, uint32(i), 5)
			out = append(out, syn, syn,
				snifftest.IPv4Segment(server, c, sniff.FlagFIN|sniff.FlagACK, 500, 5),
				snifftest.IPv4Segment(server, c, sniff.FlagRST, 501, 5))
		}
		return out
	}
	allocs := func(file []byte) float64 {
		return testing.AllocsPerRun(5, func() {
			p := failuresFile(t, file)
			if _, err := p.Run(context.Background(), 0, noop{}); err != nil {
				t.Fatal(err)
			}
		})
	}
	a, b := allocs(pcapOf(t, segs(10)...)), allocs(pcapOf(t, segs(1000)...))
	if b-a > 8 {
		t.Errorf("%v allocations for 1,000 connections, %v for 10: the per-packet path allocates", b, a)
	}
}
