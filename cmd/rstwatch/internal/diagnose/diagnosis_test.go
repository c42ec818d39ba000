package diagnose

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// fixedDiagnosis is a five-second run fed without capture: a client
// retrying a port whose listener went away, a firewall rejecting
// connections to a live listener, and a listener overflowing silently.
func fixedDiagnosis() *Diagnosis {
	start := time.Date(2026, 11, 21, 10, 55, 0, 0, time.UTC)
	base := proc.Counters{"Tcp.AttemptFails": 1000, "Tcp.OutRsts": 500, "Tcp.ActiveOpens": 9000, "Tcp.EstabResets": 40,
		"TcpExt.ListenOverflows": 3, "TcpExt.ListenDrops": 3, "TcpExt.TCPSynRetrans": 20, "TcpExt.TCPTimeouts": 30}
	d := New(start, base)
	d.SampleListeners([]explain.Listener{
		{Addr: netip.MustParseAddrPort("0.0.0.0:8080"), Queue: 3, Backlog: 128,
			Process: explain.Proc{Known: true, Owned: true, PID: 90, Comm: "nginx", UID: 33, State: "LISTEN"}},
		{Addr: netip.MustParseAddrPort("127.0.0.1:7214"), Queue: 0, Backlog: 4096,
			Process: explain.Proc{Known: true, Owned: true, PID: 77, Comm: "api\x1b[31m", UID: 0, State: "LISTEN"}},
	})
	d.SampleListeners([]explain.Listener{{Addr: netip.MustParseAddrPort("0.0.0.0:8080"), Queue: 129, Backlog: 128,
		Process: explain.Proc{Known: true, Owned: true, PID: 90, Comm: "nginx", UID: 33, State: "LISTEN"}}})

	refused := netip.MustParseAddrPort("127.0.0.1:7211")
	for i := range 10 {
		e := &sniff.Event{Time: start.Add(time.Duration(i) * 500 * time.Millisecond), Ifname: "lo", Direction: sniff.Local,
			Segment: sniff.Segment{Src: refused, Dst: netip.AddrPortFrom(refused.Addr(), uint16(41000+i)), Flags: sniff.FlagRST | sniff.FlagACK}}
		v := &explain.Verdict{Cause: explain.Refused,
			Sender: explain.Sender{Local: explain.True, Listening: explain.False,
				LastListener: explain.LastListener{Known: true, PID: 311, Comm: "collector", UID: 1000, Until: time.Date(2026, 11, 21, 10, 54, 50, 0, time.UTC)}},
			Target: explain.Target{Local: explain.True}}
		if i%2 == 0 {
			v.Target.Process = explain.Proc{Known: true, Owned: true, PID: 4242, Comm: "agent", UID: 1000, State: "SYN-SENT", Seen: explain.Recent}
		}
		d.Add(e, v)
	}
	rejected := netip.MustParseAddrPort("127.0.0.1:7214")
	for i := range 4 {
		e := &sniff.Event{Time: start.Add(time.Second + time.Duration(i)*time.Second), Ifname: "lo", Direction: sniff.Local,
			Segment: sniff.Segment{Src: rejected, Dst: netip.AddrPortFrom(rejected.Addr(), uint16(42000+i)), Flags: sniff.FlagRST | sniff.FlagACK}}
		d.Add(e, &explain.Verdict{Cause: explain.Rejected,
			Sender:   explain.Sender{Local: explain.True, Listening: explain.True},
			Target:   explain.Target{Local: explain.True},
			Listener: explain.Proc{Known: true, Owned: true, PID: 77, Comm: "api\x1b[31m", State: "LISTEN"}, Backlog: 4096})
	}
	d.End = start.Add(5 * time.Second)
	d.C1 = proc.Counters{"Tcp.AttemptFails": 1016, "Tcp.OutRsts": 510, "Tcp.ActiveOpens": 9020, "Tcp.EstabResets": 40,
		"TcpExt.ListenOverflows": 10, "TcpExt.ListenDrops": 10, "TcpExt.TCPSynRetrans": 22, "TcpExt.TCPTimeouts": 30}
	d.Uptime = 86400
	d.Alerts = []string{"AttemptFails>2/s: AttemptFails rose by 16 in 5s (3.20/s); it counts " + counters.Meaning("AttemptFails")}
	return d
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("failed to update %s: %v", path, err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("failed to read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("%s differs (-want +got):\n- %s\n+ %s", name, want, got)
	}
}

func TestDiagnoseReportGolden(t *testing.T) {
	r := fixedDiagnosis().Report()
	golden(t, "report.txt.golden", []byte(r.Text()))
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatalf("failed to marshal report: %v", err)
	}
	golden(t, "report.json.golden", append(js, '\n'))
}

func TestDiagnoseReportFacts(t *testing.T) {
	r := fixedDiagnosis().Report()
	if !r.Abnormal || len(r.Findings) != 3 {
		t.Fatalf("abnormal %v with %d findings, want true and 3: %+v", r.Abnormal, len(r.Findings), r.Findings)
	}
	top := r.Findings[0]
	if top.Cause != "refused" || top.Local != "127.0.0.1:7211" || top.Count != 10 || top.RatePerS != 2 {
		t.Errorf("top finding %+v, want refused 127.0.0.1:7211 10 at 2/s", top)
	}
	kinds := map[string]bool{}
	for _, u := range r.Unexplained {
		kinds[u.Kind] = true
	}
	// 16 failed, 14 explained by resets to local clients; 14 sent, 10
	// counted by OutRsts: 4 came from a firewall.
	for _, k := range []string{"failed_without_reset", "resets_not_counted", "listen_overflow_without_reset"} {
		if !kinds[k] {
			t.Errorf("unexplained lacks %s: %+v", k, r.Unexplained)
		}
	}
	if r.Headline.FailedPerS != 3.2 || !r.Headline.New {
		t.Errorf("headline %+v, want 3.2 failed/s and new", r.Headline)
	}
}

func TestDiagnoseQuiet(t *testing.T) {
	start := time.Date(2026, 11, 21, 10, 55, 0, 0, time.UTC)
	c := proc.Counters{"Tcp.AttemptFails": 5, "Tcp.OutRsts": 5}
	d := New(start, c)
	d.End, d.C1 = start.Add(time.Second), c
	r := d.Report()
	if r.Abnormal || len(r.Findings) != 0 || len(r.Unexplained) != 0 {
		t.Fatalf("quiet run reported %+v", r)
	}
	if got := r.Text(); !bytes.Contains([]byte(got), []byte("Nothing abnormal")) {
		t.Fatalf("quiet report: %q", got)
	}
}
