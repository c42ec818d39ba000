package render

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe/safetest"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// failureEvents are an unanswered SYN and an ICMP error from a router,
// with a hostile client name.
func failureEvents() []struct {
	e *sniff.Event
	v *explain.Verdict
} {
	t0 := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	client := explain.Proc{Known: true, Owned: true, PID: 812, Comm: "cu\x1b[2Jrl", State: "SYN-SENT", Seen: explain.Live}
	syn := &sniff.Event{Time: t0.Add(1010 * time.Millisecond), Ifname: "eth0", Direction: sniff.Out}
	syn.Family, syn.Flags, syn.Seq, syn.Window = sniff.IPv4, sniff.FlagSYN, 123, 64240
	syn.Src, syn.Dst = netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.5:8080")
	icmp := *syn
	icmp.Direction = sniff.In
	icmp.ICMP = sniff.ICMPError{From: netip.MustParseAddr("10.0.0.254"), To: syn.Src.Addr(), Type: 3, Code: 1}
	return []struct {
		e *sniff.Event
		v *explain.Verdict
	}{
		{syn, &explain.Verdict{Kind: explain.KindUnanswered, Cause: explain.Timeout, Attempts: 2, First: t0,
			Sender: explain.Sender{Local: explain.True, Process: client}, Target: explain.Target{Local: explain.False}}},
		{&icmp, &explain.Verdict{Kind: explain.KindUnreachable, Cause: explain.Unreachable,
			Sender: explain.Sender{Local: explain.True, Process: client}, Target: explain.Target{Local: explain.False}}},
	}
}

func TestAppendFailures(t *testing.T) {
	evs := failureEvents()
	wantText := []string{
		"10.0.0.1.40000 > 10.0.0.5.8080: Flags [S], seq 123, win 64240, length 0; unanswered, timeout: SYN sent 2 times in 1.010s, no answer from 10.0.0.5:8080 (usually http-alt); client cu\\x1b[2Jrl pid 812",
		"10.0.0.1.40000 > 10.0.0.5.8080: ICMP host unreachable from 10.0.0.254 (router), seq 123; unreachable, unreachable: router 10.0.0.254 answered host unreachable for 10.0.0.5:8080 (usually http-alt); client cu\\x1b[2Jrl pid 812",
	}
	for i, ev := range evs {
		line := AppendText(nil, ev.e, ev.v, nil)
		safetest.AssertLine(t, line)
		if !strings.Contains(string(line), wantText[i]) {
			t.Errorf("text\n%s\nlacks\n%s", line, wantText[i])
		}
		js := AppendJSON(nil, ev.e, ev.v, nil)
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			t.Fatalf("not JSON: %v: %s", err, js)
		}
		for _, k := range append(append(EventFieldsV1, EventFieldsV3...), "cause", "sender", "target") {
			if _, ok := m[k]; !ok {
				t.Errorf("JSON lacks %q: %s", k, js)
			}
		}
		if m["kind"] != ev.v.Kind.String() {
			t.Errorf("kind = %v, want %v", m["kind"], ev.v.Kind)
		}
	}
	var m map[string]any
	json.Unmarshal(AppendJSON(nil, evs[0].e, evs[0].v, nil), &m)
	if m["attempts"] != 2.0 || m["waited_s"] != 1.01 {
		t.Errorf("attempts %v, waited_s %v, want 2 and 1.01", m["attempts"], m["waited_s"])
	}
	json.Unmarshal(AppendJSON(nil, evs[1].e, evs[1].v, nil), &m)
	if icmp, _ := m["icmp"].(map[string]any); icmp["by"] != "router" || icmp["from"] != "10.0.0.254" || icmp["text"] != "host unreachable" || icmp["code"] != 1.0 {
		t.Errorf("icmp = %v", m["icmp"])
	}
	// A reset says so too.
	e, v := sampleEvent()
	json.Unmarshal(AppendJSON(nil, e, v, nil), &m)
	if m["kind"] != "reset" {
		t.Errorf("a reset's kind = %v", m["kind"])
	}
}

func TestAppendFailuresAllocs(t *testing.T) {
	buf := make([]byte, 0, 2048)
	for _, ev := range failureEvents() {
		if n := testing.AllocsPerRun(1000, func() {
			buf = AppendJSON(buf[:0], ev.e, ev.v, nil)
			buf = AppendText(buf, ev.e, ev.v, nil)
		}); n != 0 {
			t.Errorf("%v: %v allocations per event", ev.v.Kind, n)
		}
	}
}
