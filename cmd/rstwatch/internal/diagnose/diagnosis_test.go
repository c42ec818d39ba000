package diagnose

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
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
	// Seven SYNs arrive for the full listener (and are dropped).
	for i := range 7 {
		d.Observe(&sniff.Event{Time: start.Add(time.Duration(i) * 100 * time.Millisecond), Ifname: "eth0", Direction: sniff.In,
			Segment: sniff.Segment{Src: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.7"), uint16(50000+i)),
				Dst: netip.MustParseAddrPort("10.0.0.2:8080"), Flags: sniff.FlagSYN, Seq: uint32(i)}})
	}
	d.Sysctls = map[string]string{SysAbortOnOverflow: "0", SysSomaxconn: "4096", SysMaxSynBacklog: "512", SysSyncookies: "1"}

	refused := netip.MustParseAddrPort("127.0.0.1:7211")
	for i := range 10 {
		e := &sniff.Event{Time: start.Add(time.Duration(i) * 500 * time.Millisecond), Ifname: "lo", Direction: sniff.Local,
			Segment: sniff.Segment{Src: refused, Dst: netip.AddrPortFrom(refused.Addr(), uint16(41000+i)), Flags: sniff.FlagRST | sniff.FlagACK}}
		v := &explain.Verdict{Cause: explain.Refused,
			Sender: explain.Sender{Local: explain.True, Listening: explain.False, ListenChecked: true,
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
			Sender:   explain.Sender{Local: explain.True, Listening: explain.True, ListenChecked: true},
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
	if top.Cause != "refused" || top.ServiceAddr != "127.0.0.1:7211" || top.Count != 10 || top.RunRatePerS != 2 {
		t.Errorf("top finding %+v, want refused 127.0.0.1:7211 10 at 2/s", top)
	}
	if ov := r.Findings[1]; ov.Cause != "overflow" || ov.ServiceAddr != "0.0.0.0:8080" || ov.Count != 7 || strings.Count(r.Text(), "ListenOverflows +7") != 1 {
		t.Errorf("second finding %+v, want overflow 0.0.0.0:8080 blamed for the 7 SYNs, and the counter quoted once", ov)
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

// TestPartialAttribution: resets whose sender was not named join the one
// program named for the same service and role; with two named programs
// they stay apart, since which one sent them is not known. Reporting twice
// gives the same report.
func TestPartialAttribution(t *testing.T) {
	start := time.Date(2026, 11, 21, 10, 55, 0, 0, time.UTC)
	abort := func(d *Diagnosis, port uint16, comm string) {
		v := &explain.Verdict{Cause: explain.Abort, Sender: explain.Sender{Local: explain.True, Listening: explain.True}, Target: explain.Target{Local: explain.True}}
		if comm != "" {
			v.Sender.Process = explain.Proc{Known: true, Owned: true, PID: len(comm), Comm: comm}
		}
		d.Add(&sniff.Event{Time: start, Ifname: "lo", Direction: sniff.Local, Segment: sniff.Segment{
			Src: netip.MustParseAddrPort("127.0.0.1:8080"), Dst: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
			Flags: sniff.FlagRST | sniff.FlagACK, Window: 100}}, v)
	}
	count := func(r *Report) []string {
		var out []string
		for _, f := range r.Findings {
			out = append(out, fmt.Sprintf("%s %d %d", programsIn(&f, "server"), f.Count, len(f.Programs)))
		}
		return out
	}
	one := New(start, nil)
	abort(one, 40000, "api")
	abort(one, 40001, "")
	abort(one, 40002, "")
	one.End = start.Add(time.Second)
	want := "[api (pid 3) 3 1]"
	if got := fmt.Sprint(count(one.Report())); got != want {
		t.Errorf("one named program: %s, want %s", got, want)
	}
	if got := fmt.Sprint(count(one.Report())); got != want {
		t.Errorf("second report: %s, want %s", got, want)
	}
	two := New(start, nil)
	abort(two, 40000, "api")
	abort(two, 40001, "worker")
	abort(two, 40002, "")
	two.End = start.Add(time.Second)
	if got := len(two.Report().Findings); got != 3 {
		t.Errorf("two named programs and an unnamed reset: %d findings, want 3", got)
	}
}
