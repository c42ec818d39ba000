package diagnose

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe/safetest"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

var t0 = time.Date(2026, 11, 21, 10, 55, 0, 0, time.UTC)

// reset is one captured reset of a scenario: from src to dst, at t0+at.
type reset struct {
	at       time.Duration
	src, dst string
	dir      sniff.Direction
	v        explain.Verdict
}

func (r *reset) event() *sniff.Event {
	return &sniff.Event{Time: t0.Add(r.at), Ifname: "eth0", Direction: r.dir,
		Segment: sniff.Segment{Src: netip.MustParseAddrPort(r.src), Dst: netip.MustParseAddrPort(r.dst), Flags: sniff.FlagRST | sniff.FlagACK}}
}

func owned(pid int, comm string) explain.Proc {
	return explain.Proc{Known: true, Owned: true, PID: pid, Comm: comm, UID: 1000, State: "ESTAB", Seen: explain.Live}
}

func listener(addr string, queue, backlog uint32, pid int, comm string) explain.Listener {
	l := explain.Listener{Addr: netip.MustParseAddrPort(addr), Queue: queue, Backlog: backlog}
	if pid > 0 {
		l.Process = owned(pid, comm)
		l.Process.State = "LISTEN"
	}
	return l
}

// counts builds the start and end counters from the changes of a run.
func counts(delta map[string]uint64) (proc.Counters, proc.Counters) {
	c0, c1 := proc.Counters{}, proc.Counters{}
	for _, ci := range counters.Catalogue() {
		c0[ci.Key], c1[ci.Key] = 1000, 1000+delta[ci.Name]
	}
	return c0, c1
}

// TestScenarios feeds the diagnosis the resets, listener samples and
// counter changes of one situation each, as the capture, the explainer
// and /proc would, and checks the report: its findings (cause, endpoint,
// count, advice), what it calls unexplained, whether it is abnormal, and
// that its text and JSON say so.
func TestScenarios(t *testing.T) {
	for _, tt := range []struct {
		name      string
		resets    []reset
		listeners [][]explain.Listener
		delta     map[string]uint64 // nil: no counters
		offline   bool
		alerts    []string

		findings    []string // "cause local count"
		advice      []string // a part of each finding's advice, in order
		unexplained []string // kinds
		abnormal    bool
		text        []string // parts of the text report
	}{{
		name: "refused_by_a_remote_server",
		resets: []reset{
			{0, "192.0.2.10:443", "10.0.0.2:40000", sniff.In, explain.Verdict{Cause: explain.Refused,
				Sender: explain.Sender{Local: explain.False}, Target: explain.Target{Local: explain.True, Process: owned(100, "curl")}}},
		},
		delta:    map[string]uint64{"AttemptFails": 1, "ActiveOpens": 1},
		findings: []string{"refused 192.0.2.10:443 1"},
		advice: []string{"192.0.2.10:443 refuses connections: nothing listens there; process curl (pid 100) connects there " +
			"0.2 times a second: check that service, or the clients' configuration"},
		abnormal: true,
		text:     []string{"1. refused 192.0.2.10:443 (https): 1 (0.20/s), in on eth0\n", "processes: client curl pid 100\n"},
	}, {
		name: "refused_locally_nothing_ever_listened",
		resets: []reset{
			{0, "127.0.0.1:7000", "127.0.0.1:50000", sniff.Local, explain.Verdict{Cause: explain.Refused,
				Sender: explain.Sender{Local: explain.True, Listening: explain.False}, Target: explain.Target{Local: explain.True}}},
			{time.Second, "127.0.0.1:7000", "127.0.0.1:50001", sniff.Local, explain.Verdict{Cause: explain.Refused,
				Sender: explain.Sender{Local: explain.True, Listening: explain.False}, Target: explain.Target{Local: explain.True}}},
		},
		delta:    map[string]uint64{"AttemptFails": 2, "OutRsts": 2},
		findings: []string{"refused 127.0.0.1:7000 2"},
		advice:   []string{"nothing listens on 127.0.0.1:7000; clients on this host connect there 0.4 times a second: start the service or fix the client"},
		abnormal: true,
	}, {
		name: "abort_by_a_local_application",
		resets: []reset{
			{0, "10.0.0.2:8080", "192.0.2.50:61000", sniff.Out, explain.Verdict{Cause: explain.Abort,
				Sender: explain.Sender{Local: explain.True, Process: owned(50, "app")}, Target: explain.Target{Local: explain.False}}},
			{time.Second, "10.0.0.2:8080", "192.0.2.51:61001", sniff.Out, explain.Verdict{Cause: explain.Abort,
				Sender: explain.Sender{Local: explain.True, Process: owned(50, "app")}, Target: explain.Target{Local: explain.False}}},
		},
		delta:    map[string]uint64{"OutRsts": 2, "EstabResets": 2, "TCPAbortOnData": 2},
		findings: []string{"abort 10.0.0.2:8080 2"},
		advice:   []string{"app (pid 50) on 10.0.0.2:8080 aborted 2 connections (SO_LINGER 0, closed with unread data, or a listener closed with connections pending): check that application"},
		abnormal: true,
		text:     []string{"peers: 192.0.2.50 (1), 192.0.2.51 (1)\n", "processes: sender app pid 50\n"},
	}, {
		name: "abort_by_the_peer",
		resets: []reset{
			{0, "198.51.100.7:5432", "10.0.0.2:41000", sniff.In, explain.Verdict{Cause: explain.Abort,
				Sender: explain.Sender{Local: explain.False}, Target: explain.Target{Local: explain.True, Process: owned(60, "worker")}}},
		},
		delta:    map[string]uint64{"EstabResets": 1},
		findings: []string{"abort 198.51.100.7:5432 1"},
		advice:   []string{"the peer 198.51.100.7:5432 aborted 1 connection"},
		abnormal: true,
	}, {
		name: "stale_segments",
		resets: []reset{
			{0, "10.0.0.2:22", "192.0.2.9:5000", sniff.Out, explain.Verdict{Cause: explain.Stale, Sender: explain.Sender{Local: explain.True}}},
			{time.Second, "10.0.0.2:22", "192.0.2.9:5000", sniff.Out, explain.Verdict{Cause: explain.Stale, Sender: explain.Sender{Local: explain.True}}},
			{2 * time.Second, "10.0.0.2:22", "192.0.2.9:5000", sniff.Out, explain.Verdict{Cause: explain.Stale, Sender: explain.Sender{Local: explain.True}}},
		},
		delta:    map[string]uint64{"OutRsts": 3},
		findings: []string{"stale 10.0.0.2:22 3"},
		advice:   []string{"3 segments reached 10.0.0.2:22 for connections it no longer has"},
		abnormal: true,
		text:     []string{"1. stale 10.0.0.2:22 (ssh): 3 (1.00/s), out on eth0\n"},
	}, {
		name: "overflow_with_resets",
		resets: []reset{
			{0, "10.0.0.2:80", "192.0.2.1:3000", sniff.Out, explain.Verdict{Cause: explain.Overflow,
				Sender: explain.Sender{Local: explain.True, Listening: explain.True}, Listener: owned(9, "nginx"), Queue: 129, Backlog: 128}},
		},
		listeners: [][]explain.Listener{{listener("10.0.0.2:80", 129, 128, 9, "nginx")}},
		delta:     map[string]uint64{"ListenOverflows": 1, "ListenDrops": 1, "EmbryonicRsts": 1, "OutRsts": 1},
		findings:  []string{"overflow 10.0.0.2:80 1"},
		advice:    []string{"listener 10.0.0.2:80 (nginx pid 9) has a full accept queue 129/128: it accepts too slowly"},
		abnormal:  true,
	}, {
		name:        "silent_overflow_seen_full",
		listeners:   [][]explain.Listener{{listener("0.0.0.0:8080", 10, 128, 90, "java")}, {listener("0.0.0.0:8080", 129, 128, 90, "java")}},
		delta:       map[string]uint64{"ListenOverflows": 5, "ListenDrops": 5},
		findings:    []string{"overflow 0.0.0.0:8080 5"},
		advice:      []string{"listener 0.0.0.0:8080 (java pid 90) has a full accept queue 129/128: it accepts too slowly; raise its backlog or net.core.somaxconn, or make it accept faster (ListenOverflows +5; without net.ipv4.tcp_abort_on_overflow the clients get no reset"},
		unexplained: []string{"listen_overflow_without_reset"},
		abnormal:    true,
	}, {
		name: "silent_overflow_drained_between_samples",
		listeners: [][]explain.Listener{{listener("0.0.0.0:8080", 100, 128, 90, "java"), listener("0.0.0.0:9090", 1, 128, 0, ""),
			listener("0.0.0.0:22", 0, 128, 1, "sshd")}},
		delta:       map[string]uint64{"ListenOverflows": 2},
		findings:    []string{"overflow 0.0.0.0:8080 2"},
		advice:      []string{"listener 0.0.0.0:8080 (java pid 90) has a full accept queue 100/128"},
		unexplained: []string{"listen_overflow_without_reset"},
		abnormal:    true,
	}, {
		name:        "syns_timing_out",
		delta:       map[string]uint64{"AttemptFails": 4, "TCPSynRetrans": 12, "ActiveOpens": 4},
		unexplained: []string{"failed_without_reset"},
		abnormal:    true,
		text: []string{"0.80 failed connections/s", "Not explained by the resets:\n- 4 failed connection attempts drew no reset: " +
			"their SYNs timed out or were dropped (TCPSynRetrans +12, TCPTimeouts +0)"},
	}, {
		name: "firewall_resets_not_counted",
		resets: []reset{
			{0, "10.0.0.2:25", "192.0.2.3:4000", sniff.Out, explain.Verdict{Cause: explain.Rejected,
				Sender: explain.Sender{Local: explain.True, Listening: explain.True}, Listener: owned(25, "postfix")}},
			{time.Second, "10.0.0.2:25", "192.0.2.3:4001", sniff.Out, explain.Verdict{Cause: explain.Rejected,
				Sender: explain.Sender{Local: explain.True, Listening: explain.True}, Listener: owned(25, "postfix")}},
		},
		delta:       map[string]uint64{},
		findings:    []string{"rejected 10.0.0.2:25 2"},
		advice:      []string{"a firewall or policy resets connections to 10.0.0.2:25 although postfix (pid 25) listens there; 192.0.2.3 connect there"},
		unexplained: []string{"resets_not_counted"},
		abnormal:    true,
		text:        []string{"- 2 resets left this host that its TCP stack did not count (OutRsts +0)"},
	}, {
		name:     "quiet",
		delta:    map[string]uint64{"ActiveOpens": 50},
		abnormal: false,
		text:     []string{"rstwatch diagnose: 0 resets in 5.00s\n0.00 failed connections/s", "\nNothing abnormal: "},
	}, {
		name: "no_kernel_counters",
		resets: []reset{
			{0, "10.0.0.2:9000", "10.0.0.3:1", sniff.Out, explain.Verdict{Cause: explain.Unknown, Sender: explain.Sender{Local: explain.True}}},
		},
		findings: []string{"unknown 10.0.0.2:9000 1"},
		advice:   []string{"1 reset of an unusual shape from 10.0.0.2:9000: look at them with `rstwatch watch --port 9000`"},
		abnormal: true,
		text:     []string{"failed connections unknown (no kernel counters), 0.20 resets/s sent"},
	}, {
		name:    "offline",
		offline: true,
		resets: []reset{
			{0, "10.0.0.2:80", "10.0.0.3:1", sniff.Out, explain.Verdict{Cause: explain.Refused, Offline: true}},
			{2 * time.Second, "10.0.0.2:80", "10.0.0.3:2", sniff.Out, explain.Verdict{Cause: explain.Refused, Offline: true}},
		},
		findings: []string{"refused 10.0.0.2:80 2"},
		advice:   []string{"10.0.0.2:80 refuses connections: nothing listens there; 10.0.0.3 connect there once a second"},
		abnormal: true,
		text:     []string{"rstwatch diagnose (offline, from the packets and handshakes in the file): 2 resets over 2.00s\n"},
	}, {
		name:     "alert_only",
		delta:    map[string]uint64{"ActiveOpens": 50},
		alerts:   []string{"ActiveOpens>5/s"},
		abnormal: true,
		text:     []string{"Alerts:\n- ALERT ActiveOpens>5/s: ActiveOpens rose by 50 in 5s (10.00/s); it counts connections this host started"},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			var c0, c1 proc.Counters
			if tt.delta != nil {
				c0, c1 = counts(tt.delta)
			}
			d := New(t0, c0)
			d.Offline = tt.offline
			for _, ls := range tt.listeners {
				d.SampleListeners(ls)
			}
			for i := range tt.resets {
				d.Add(tt.resets[i].event(), &tt.resets[i].v)
			}
			d.End, d.C1, d.Uptime = t0.Add(5*time.Second), c1, 1e6
			if tt.offline {
				d.Start, d.End = d.FileSpan()
			}
			var rules []counters.Rule
			for _, a := range tt.alerts {
				r, err := counters.ParseRule(a)
				if err != nil {
					t.Fatalf("failed to parse %q: %v", a, err)
				}
				rules = append(rules, r)
			}
			d.EvalAlerts(rules)
			r := d.Report()

			var got, kinds []string
			for _, f := range r.Findings {
				got = append(got, f.Cause+" "+f.Local+" "+itoa(f.Count))
			}
			if strings.Join(got, "; ") != strings.Join(tt.findings, "; ") {
				t.Errorf("findings %q, want %q", got, tt.findings)
			}
			for i, want := range tt.advice {
				if i < len(r.Findings) && !strings.Contains(string(r.Findings[i].Advice), want) {
					t.Errorf("finding %d advice:\n%s\nwant it to contain:\n%s", i, r.Findings[i].Advice, want)
				}
			}
			for _, u := range r.Unexplained {
				kinds = append(kinds, u.Kind)
			}
			if strings.Join(kinds, " ") != strings.Join(tt.unexplained, " ") {
				t.Errorf("unexplained %q, want %q", kinds, tt.unexplained)
			}
			if r.Abnormal != tt.abnormal {
				t.Errorf("abnormal %t, want %t", r.Abnormal, tt.abnormal)
			}
			text := r.Text()
			for _, want := range tt.text {
				if !strings.Contains(text, want) {
					t.Errorf("text lacks %q:\n%s", want, text)
				}
			}
			for _, f := range r.Findings {
				if !strings.Contains(text, string(f.Advice)) {
					t.Errorf("text lacks the advice %q", f.Advice)
				}
			}
			checkJSON(t, r)
		})
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// checkJSON writes r as JSON and checks that it is valid and carries the
// findings as the report has them.
func checkJSON(t *testing.T, r *Report) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatalf("failed to write JSON: %v", err)
	}
	if !json.Valid(buf.Bytes()) || !bytes.HasSuffix(buf.Bytes(), []byte("}\n")) {
		t.Fatalf("not one JSON document and a newline:\n%s", buf.Bytes())
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("failed to read back: %v", err)
	}
	fs, _ := m["findings"].([]any)
	if len(fs) != len(r.Findings) || m["abnormal"] != r.Abnormal {
		t.Errorf("JSON has %d findings, abnormal %v; report %d, %v", len(fs), m["abnormal"], len(r.Findings), r.Abnormal)
	}
	for i, f := range fs {
		if adv := f.(map[string]any)["advice"]; adv != string(r.Findings[i].Advice) {
			t.Errorf("JSON finding %d advice %q, want %q", i, adv, r.Findings[i].Advice)
		}
	}
	return m
}

// TestHostileReport names every process and interface of a report with a
// hostile name and checks that neither the text nor the JSON report
// writes a raw control, C1 or bidi rune, and that the JSON reads back the
// names (invalid UTF-8 replaced). The JSON went through encoding/json
// alone before, which writes U+202E and U+0085 raw.
func TestHostileReport(t *testing.T) {
	for _, name := range safetest.Hostile {
		d := New(t0, nil)
		d.SampleListeners([]explain.Listener{listener("127.0.0.1:80", 1, 128, 7, name)})
		ll := explain.LastListener{Known: true, PID: 8, Comm: name, UID: 1, Until: t0}
		for i, v := range []explain.Verdict{
			{Cause: explain.Refused, Sender: explain.Sender{Local: explain.True, LastListener: ll}, Target: explain.Target{Local: explain.True, Process: owned(9, name)}},
			{Cause: explain.Rejected, Sender: explain.Sender{Local: explain.True}, Listener: owned(7, name)},
			{Cause: explain.Overflow, Sender: explain.Sender{Local: explain.True}, Listener: owned(7, name), Queue: 2, Backlog: 1},
			{Cause: explain.Abort, Sender: explain.Sender{Local: explain.True, Process: owned(10, name)}},
		} {
			e := (&reset{src: "127.0.0.1:" + itoa(80+i), dst: "127.0.0.1:5000", dir: sniff.Local}).event()
			e.Ifname = name
			d.Add(e, &v)
		}
		d.End = t0.Add(time.Second)
		r := d.Report()
		safetest.AssertTerminalSafe(t, []byte(r.Text()))
		var buf bytes.Buffer
		if err := r.WriteJSON(&buf); err != nil {
			t.Fatalf("failed to write JSON: %v", err)
		}
		safetest.AssertTerminalSafe(t, buf.Bytes())
		m := checkJSON(t, r)
		want := perByteValid(name)
		ls := m["listeners"].([]any)[0].(map[string]any)
		if name != "" && ls["comm"] != want {
			t.Errorf("listeners[0].comm = %q, want %q", ls["comm"], want)
		}
		f0 := m["findings"].([]any)[0].(map[string]any)
		if name != "" && f0["ifnames"].([]any)[0] != want {
			t.Errorf("findings[0].ifnames = %q, want %q", f0["ifnames"], want)
		}
		for _, p := range f0["processes"].([]any) {
			if c := p.(map[string]any)["comm"]; c != want {
				t.Errorf("findings[0] process comm = %q, want %q", c, want)
			}
		}
	}
}

// perByteValid replaces each byte of invalid UTF-8 with U+FFFD, as a JSON
// decoder does.
func perByteValid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError for an invalid byte
		i += size
	}
	return b.String()
}

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	c := proc.Counters{"Tcp.AttemptFails": 10}
	p := NewProgress(&buf, func() (proc.Counters, error) { c["Tcp.AttemptFails"] += 5; return c, nil }, proc.Counters{"Tcp.AttemptFails": 10})
	p.Resets.Store(3)
	p.Show()
	line := buf.String()
	if !strings.HasPrefix(line, "\r") || !strings.Contains(line, "s elapsed, 3 resets, 0.0 failed connections/s") {
		t.Errorf("progress line %q", line)
	}
	buf.Reset()
	p.Clear()
	if got := buf.String(); got != "\r"+strings.Repeat(" ", len(line)-1)+"\r" {
		t.Errorf("clear wrote %q for a line of %d", got, len(line)-1)
	}
}
