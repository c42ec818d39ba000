package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc"
)

func TestParseAlert(t *testing.T) {
	for _, tt := range []struct {
		name, expr string
		want       string // canonical text
		unit       alertUnit
		op         alertOp
		value      float64
	}{
		{"rate_per_second", "AttemptFails>2/s", "AttemptFails>2/s", perSecond, opGT, 2},
		{"bare_delta", "ListenOverflows>0", "ListenOverflows>0", perInterval, opGT, 0},
		{"per_minute", "ActiveOpens<1/m", "ActiveOpens<1/m", perMinute, opLT, 1},
		{"lower_case", "attemptfails>=3", "AttemptFails>=3", perInterval, opGE, 3},
		{"tcp_prefix", "Tcp.OutRsts<=10/s", "OutRsts<=10/s", perSecond, opLE, 10},
		{"tcpext_prefix_any_case", "tcpext.listendrops==0", "ListenDrops==0", perInterval, opEQ, 0},
		{"spaces", "  EstabResets  >  0.5 / s ", "EstabResets>0.5/s", perSecond, opGT, 0.5},
		{"decimal", "TCPAbortOnData>1.25", "TCPAbortOnData>1.25", perInterval, opGT, 1.25},
		{"leading_zeros", "InErrs>007", "InErrs>7", perInterval, opGT, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseAlert(tt.expr)
			if err != nil {
				t.Fatalf("failed to parse %q: %v", tt.expr, err)
			}
			if r.text != tt.want || r.unit != tt.unit || r.op != tt.op || r.value != tt.value {
				t.Errorf("parseAlert(%q) = {%q unit %d op %v value %v}, want {%q unit %d op %v value %v}",
					tt.expr, r.text, r.unit, r.op, r.value, tt.want, tt.unit, tt.op, tt.value)
			}
			if r.counter == nil || !strings.HasPrefix(tt.want, r.counter.name+r.op.String()) {
				t.Errorf("parseAlert(%q) counter = %v", tt.expr, r.counter)
			}
		})
	}
}

func TestParseAlertErrors(t *testing.T) {
	for _, tt := range []struct{ name, expr, want string }{
		{"empty", "", `invalid --alert "": want NAME OP VALUE[/s|/m]`},
		{"no_operator", "AttemptFails", `invalid --alert "AttemptFails": want NAME OP VALUE[/s|/m]`},
		{"single_equals", "AttemptFails=2", "use == to compare for equality"},
		{"no_name", ">2", `no counter name before ">"`},
		{"no_value", "AttemptFails>", `no value after ">"`},
		{"no_value_with_unit", "AttemptFails>/s", `no value after ">"`},
		{"unknown_counter", "Resets>1", `unknown counter "Resets" (counters: AttemptFails, EstabResets, OutRsts,`},
		{"wrong_prefix", "TcpExt.AttemptFails>1", `unknown counter "TcpExt.AttemptFails"`},
		{"unknown_unit", "AttemptFails>2/h", `unknown unit "/h": want /s (per second), /m (per minute)`},
		{"negative", "AttemptFails>-1", `value "-1" is not a non-negative decimal number`},
		{"exponent", "AttemptFails>1e3", `value "1e3" is not a non-negative decimal number`},
		{"inf", "AttemptFails<inf", `value "inf" is not a non-negative decimal number`},
		{"hex", "AttemptFails>0x10", `value "0x10" is not a non-negative decimal number`},
		{"double_operator", "AttemptFails>>2", `value ">2" is not a non-negative decimal number`},
		{"trailing_dot", "AttemptFails>2.", `value "2." is not a non-negative decimal number`},
		{"two_units", "AttemptFails>2/s/s", `unknown unit "/s/s"`},
		{"out_of_range", "AttemptFails>1" + strings.Repeat("0", 400), "is out of range"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseAlert(tt.expr)
			if err == nil {
				t.Fatalf("parseAlert(%q) succeeded, want an error", tt.expr)
			}
			var ue usageError
			if !errors.As(err, &ue) {
				t.Errorf("parseAlert(%q) error %v is not a usage error", tt.expr, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseAlert(%q) error %q lacks %q", tt.expr, err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("parseAlert(%q) error has a newline: %q", tt.expr, err)
			}
		})
	}
}

func TestAlertHolds(t *testing.T) {
	row := counterRow{info: &tcpCounters[0], delta: 5, rate: 10, elapsed: 500 * time.Millisecond}
	for _, tt := range []struct {
		expr string
		want bool
	}{
		{"AttemptFails>9/s", true},
		{"AttemptFails>10/s", false},
		{"AttemptFails>=10/s", true},
		{"AttemptFails==10/s", true},
		{"AttemptFails<10/s", false},
		{"AttemptFails<=10/s", true},
		{"AttemptFails>599/m", true},
		{"AttemptFails>600/m", false},
		{"AttemptFails>4", true},
		{"AttemptFails>5", false},
		{"AttemptFails==5", true},
		{"AttemptFails<5.5", true},
	} {
		r, err := parseAlert(tt.expr)
		if err != nil {
			t.Fatalf("failed to parse %q: %v", tt.expr, err)
		}
		if got := r.holds(row); got != tt.want {
			t.Errorf("%s on delta 5 over 500ms = %t, want %t", tt.expr, got, tt.want)
		}
	}
}

func TestCounterTable(t *testing.T) {
	seen := map[string]bool{}
	for _, ci := range tcpCounters {
		prefix, name, ok := strings.Cut(ci.key, ".")
		if !ok || (prefix != "Tcp" && prefix != "TcpExt") || name != ci.name {
			t.Errorf("counter %q: key %q does not match", ci.name, ci.key)
		}
		if !strings.HasPrefix(ci.metric, "rstwatch_tcp_") || !strings.HasSuffix(ci.metric, "_total") || strings.Contains(ci.metric, "tcp_tcp") {
			t.Errorf("counter %q: metric name %q", ci.name, ci.metric)
		}
		if seen[ci.metric] || seen[strings.ToLower(ci.name)] {
			t.Errorf("counter %q: duplicate name or metric", ci.name)
		}
		seen[ci.metric], seen[strings.ToLower(ci.name)] = true, true
		if ci.meaning == "" || counterMeaning(ci.key) != ci.meaning || counterMeaning(strings.ToUpper(ci.name)) != ci.meaning {
			t.Errorf("counter %q: counterMeaning does not find its meaning", ci.name)
		}
	}
	if got := counterMeaning("NoSuchCounter"); got != "" {
		t.Errorf("counterMeaning(unknown) = %q, want \"\"", got)
	}
	if got := counterMeaning("ListenOverflows"); !strings.Contains(got, "accept queue was full") {
		t.Errorf("counterMeaning(ListenOverflows) = %q", got)
	}
	if names := counterNames(); len(names) != 16 || names[0] != "AttemptFails" || names[15] != "TCPTimeouts" {
		t.Errorf("counterNames() = %v", names)
	}
}

func TestReadCounters(t *testing.T) {
	fs, err := proc.NewFS("")
	if err != nil {
		t.Fatalf("failed to open /proc: %v", err)
	}
	c, err := readCounters(fs)
	if err != nil {
		t.Fatalf("failed to read counters: %v", err)
	}
	for _, k := range []string{"Tcp.AttemptFails", "Tcp.OutRsts", "TcpExt.ListenOverflows"} {
		if _, ok := c[k]; !ok {
			t.Errorf("readCounters lacks %s: %v", k, c)
		}
	}
	for k := range c {
		if _, ok := findCounter(k); !ok {
			t.Errorf("readCounters returned %s, which is not in tcpCounters", k)
		}
	}
}

func TestCounterRows(t *testing.T) {
	prev := proc.Counters{"Tcp.AttemptFails": 10, "Tcp.OutRsts": 100, "TcpExt.ListenOverflows": 7, "Tcp.InErrs": 5}
	cur := proc.Counters{"Tcp.AttemptFails": 15, "Tcp.OutRsts": 100, "TcpExt.ListenOverflows": 3, "TcpExt.TCPTimeouts": 9}
	rows := counterRows(nil, prev, cur, 500*time.Millisecond)
	var got []string
	for _, r := range rows {
		got = append(got, r.info.name+" "+formatRow(r))
	}
	// InErrs is not in cur, TCPTimeouts not in prev: both omitted.
	// ListenOverflows went backwards (namespace recreated): counted from 0.
	want := []string{"AttemptFails 15 5 10", "OutRsts 100 0 0", "ListenOverflows 3 3 6"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("counterRows = %q, want %q", got, want)
	}
}

func formatRow(r counterRow) string {
	return strings.Join([]string{
		string(appendRounded(nil, float64(r.total))),
		string(appendRounded(nil, float64(r.delta))),
		string(appendRounded(nil, r.rate)),
	}, " ")
}

// fixedRows is the input of the rendering tests.
func fixedRows(t *testing.T) (time.Time, []counterRow) {
	t.Helper()
	now := time.Date(2026, 11, 21, 17, 40, 21, 761841090, time.UTC)
	prev := proc.Counters{"Tcp.AttemptFails": 7, "Tcp.OutRsts": 1, "TcpExt.ListenOverflows": 1234567, "TcpExt.TCPSynRetrans": 0}
	cur := proc.Counters{"Tcp.AttemptFails": 12, "Tcp.OutRsts": 3, "TcpExt.ListenOverflows": 1234567, "TcpExt.TCPSynRetrans": 1}
	return now, counterRows(nil, prev, cur, 1500*time.Millisecond)
}

func TestStatsText(t *testing.T) {
	now, rows := fixedRows(t)
	got := string(appendStatsText(nil, now, 1500*time.Millisecond, rows))
	want := "" +
		"17:40:21.761  interval 1.5s\n" +
		"COUNTER            TOTAL  DELTA  RATE/s\n" +
		"AttemptFails          12      5     3.3\n" +
		"OutRsts                3      2     1.3\n" +
		"ListenOverflows  1234567      0     0.0\n" +
		"TCPSynRetrans          1      1     0.7\n"
	if got != want {
		t.Errorf("appendStatsText:\n%s\nwant:\n%s", got, want)
	}
}

func TestStatsJSON(t *testing.T) {
	now, rows := fixedRows(t)
	r, err := parseAlert("AttemptFails>2/s")
	if err != nil {
		t.Fatalf("failed to parse: %v", err)
	}
	since := now.Add(-3 * time.Second)
	events := []alertEvent{{rule: &r, row: rows[0], since: since}}
	got := string(appendStatsJSON(nil, now, 1500*time.Millisecond, rows, events))
	want := `{"time":"2026-11-21T17:40:21.761841090Z","interval_s":1.5,"counters":{` +
		`"AttemptFails":{"total":12,"delta":5,"rate":3.333},` +
		`"OutRsts":{"total":3,"delta":2,"rate":1.333},` +
		`"ListenOverflows":{"total":1234567,"delta":0,"rate":0},` +
		`"TCPSynRetrans":{"total":1,"delta":1,"rate":0.667}},` +
		`"alerts":[{"rule":"AttemptFails>2/s","counter":"AttemptFails","delta":5,"rate":3.333,` +
		`"since":"2026-11-21T17:40:18.761841090Z","meaning":"connections this host started that failed: refused (RST to a SYN) or timed out"}]}`
	if got != want {
		t.Errorf("appendStatsJSON:\n%s\nwant:\n%s", got, want)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Errorf("appendStatsJSON output is not JSON: %v", err)
	}
}

func TestAlertLine(t *testing.T) {
	now, rows := fixedRows(t)
	for _, tt := range []struct {
		name, expr string
		cleared    bool
		want       string
	}{
		{"rate", "AttemptFails>2/s", false,
			"ALERT AttemptFails>2/s: AttemptFails rose by 5 in 1.5s (3.3/s), holding since 17:40:18; it counts connections this host started that failed: refused (RST to a SYN) or timed out"},
		{"per_minute", "AttemptFails>100/m", false,
			"ALERT AttemptFails>100/m: AttemptFails rose by 5 in 1.5s (200.0/min), holding since 17:40:18; it counts connections this host started that failed: refused (RST to a SYN) or timed out"},
		{"cleared", "AttemptFails>9", true,
			"ALERT CLEARED AttemptFails>9: AttemptFails rose by 5 in 1.5s (3.3/s); it held from 17:40:18 to 17:40:20"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseAlert(tt.expr)
			if err != nil {
				t.Fatalf("failed to parse: %v", err)
			}
			ev := alertEvent{rule: &r, row: rows[0], since: now.Add(-3 * time.Second), cleared: tt.cleared, end: now.Add(-1500 * time.Millisecond)}
			if got := string(appendAlertLine(nil, &ev)); got != tt.want {
				t.Errorf("appendAlertLine:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// fakeStats runs statsRun over canned counter readings, one per tick, 500ms
// apart, starting at 17:40:20 UTC.
func fakeStats(t *testing.T, asJSON bool, count int, exprs []string, readings ...proc.Counters) (stdout, stderr string, err error) {
	t.Helper()
	rules, err := parseAlerts(exprs)
	if err != nil {
		t.Fatalf("failed to parse alerts: %v", err)
	}
	start := time.Date(2026, 11, 21, 17, 40, 20, 0, time.UTC)
	ticks := make(chan time.Time, len(readings))
	for i := 1; i < len(readings); i++ {
		ticks <- start.Add(time.Duration(i) * 500 * time.Millisecond)
	}
	// The context ends (like Ctrl-C) once the readings are used up.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	next := 1
	var out, errOut bytes.Buffer
	s := &statsRun{out: &out, errOut: &errOut, json: asJSON, count: count, rules: rules, ticks: ticks,
		read: func() (proc.Counters, error) {
			c := readings[next]
			next++
			if next == len(readings) {
				cancel()
			}
			return c, nil
		}}
	err = s.run(ctx, readings[0], start)
	return out.String(), errOut.String(), err
}

func TestStatsRunAlerts(t *testing.T) {
	c := func(fails uint64) proc.Counters { return proc.Counters{"Tcp.AttemptFails": fails, "Tcp.OutRsts": 0} }
	// Rates per 500ms interval: 0, 10/s, 10/s, 0.
	stdout, stderr, err := fakeStats(t, false, 4, []string{"AttemptFails>1/s", "OutRsts>0"}, c(0), c(0), c(5), c(10), c(10))
	if !errors.Is(err, alertError{}) {
		t.Fatalf("run returned %v, want alertError", err)
	}
	want := "" +
		"17:40:20.500  interval 500ms\n" +
		"COUNTER       TOTAL  DELTA  RATE/s\n" +
		"AttemptFails      0      0     0.0\n" +
		"OutRsts           0      0     0.0\n" +
		"\n" +
		"17:40:21.000  interval 500ms\n" +
		"COUNTER       TOTAL  DELTA  RATE/s\n" +
		"AttemptFails      5      5    10.0\n" +
		"OutRsts           0      0     0.0\n" +
		"ALERT AttemptFails>1/s: AttemptFails rose by 5 in 500ms (10.0/s), holding since 17:40:20; it counts " + tcpCounters[0].meaning + "\n" +
		"\n" +
		"17:40:21.500  interval 500ms\n" +
		"COUNTER       TOTAL  DELTA  RATE/s\n" +
		"AttemptFails     10      5    10.0\n" +
		"OutRsts           0      0     0.0\n" +
		"ALERT AttemptFails>1/s: AttemptFails rose by 5 in 500ms (10.0/s), holding since 17:40:20; it counts " + tcpCounters[0].meaning + "\n" +
		"\n" +
		"17:40:22.000  interval 500ms\n" +
		"COUNTER       TOTAL  DELTA  RATE/s\n" +
		"AttemptFails     10      0     0.0\n" +
		"OutRsts           0      0     0.0\n" +
		"ALERT CLEARED AttemptFails>1/s: AttemptFails rose by 0 in 500ms (0.0/s); it held from 17:40:20 to 17:40:21\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if want := "1 alert rule fired: AttemptFails>1/s (in 2 of 4 intervals)\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

func TestStatsRunJSONQuiet(t *testing.T) {
	c := func(fails uint64) proc.Counters { return proc.Counters{"Tcp.AttemptFails": fails} }
	// count 0: runs until the context ends (Ctrl-C).
	stdout, stderr, err := fakeStats(t, true, 0, []string{"AttemptFails>1/s"}, c(3), c(3), c(3))
	if err != nil {
		t.Fatalf("run returned %v, want nil (no rule fired)", err)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 2 || stderr != "" {
		t.Fatalf("got %d lines and stderr %q, want 2 lines and nothing:\n%s", len(lines), stderr, stdout)
	}
	want := `{"time":"2026-11-21T17:40:20.500000000Z","interval_s":0.5,"counters":{"AttemptFails":{"total":3,"delta":0,"rate":0}},"alerts":[]}`
	if lines[0] != want {
		t.Errorf("first line:\n%s\nwant:\n%s", lines[0], want)
	}
}

func TestStatsRunJSONAlertsOnStderr(t *testing.T) {
	c := func(fails uint64) proc.Counters { return proc.Counters{"Tcp.AttemptFails": fails} }
	stdout, stderr, err := fakeStats(t, true, 1, []string{"AttemptFails>1/s"}, c(0), c(4))
	if !errors.Is(err, alertError{}) {
		t.Fatalf("run returned %v, want alertError", err)
	}
	if strings.Contains(stdout, "ALERT") || !strings.Contains(stdout, `"alerts":[{"rule":"AttemptFails>1/s"`) {
		t.Errorf("stdout %q: want JSON only, with the alert in it", stdout)
	}
	if !strings.HasPrefix(stderr, "ALERT AttemptFails>1/s: AttemptFails rose by 4 in 500ms (8.0/s)") ||
		!strings.HasSuffix(stderr, "\n1 alert rule fired: AttemptFails>1/s (in 1 of 1 intervals)\n") {
		t.Errorf("stderr %q", stderr)
	}
}

func TestStatsBadInput(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"bad_alert", []string{"stats", "--alert", "AttemptFails>>2"}, `invalid --alert "AttemptFails>>2": value ">2"`},
		{"unknown_counter", []string{"stats", "--alert", "Resets>1"}, `unknown counter "Resets" (counters: AttemptFails,`},
		{"zero_interval", []string{"stats", "--interval", "0s"}, "invalid --interval 0s: want at least 10ms"},
		{"bad_interval", []string{"stats", "--interval", "fast"}, `invalid value "fast" for flag -interval`},
		{"negative_count", []string{"stats", "-c", "-2"}, "invalid --count -2"},
		{"stray_argument", []string{"stats", "AttemptFails>1"}, `unexpected argument "AttemptFails>1"`},
		{"sockets_bad_port", []string{"sockets", "--port", "0"}, "invalid --port 0: want 1-65535"},
		{"sockets_stray_argument", []string{"sockets", "ESTAB"}, `unexpected argument "ESTAB"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(t, exec.Command(binary, tt.args...))
			assertOneLineError(t, stdout, stderr, code, exitUsage, tt.want)
		})
	}
}

func TestStatsHelp(t *testing.T) {
	for _, tt := range []struct {
		cmd  string
		want []string
	}{
		{"stats", []string{"--interval", "--count", "--json", "--alert", "Examples", "AttemptFails>2/s", "TCPTimeouts", "status 3"}},
		{"sockets", []string{"--listening", "--port", "--json", "Examples", "Recv-Q", "container"}},
	} {
		var out, errOut bytes.Buffer
		if err := newApp(&out, &errOut).Run([]string{"rstwatch", tt.cmd, "--help"}); err != nil {
			t.Fatalf("failed to run %s --help: %v", tt.cmd, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s --help lacks %q", tt.cmd, w)
			}
		}
	}
}
