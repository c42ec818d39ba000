package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
)

// TestParseAlertsUsage checks the command's wrapping of a rule's error:
// a usage error that quotes the flag and the expression (the grammar's own
// messages are tested in proc/counters).
func TestParseAlertsUsage(t *testing.T) {
	for _, tt := range []struct{ expr, want string }{
		{"", `invalid --alert "": want NAME OP VALUE[/s|/m]`},
		{"AttemptFails", `invalid --alert "AttemptFails": want NAME OP VALUE[/s|/m]`},
		{"AttemptFails=2", `invalid --alert "AttemptFails=2": use == to compare for equality`},
		{"Resets>1", `invalid --alert "Resets>1": unknown counter "Resets" (counters: AttemptFails, EstabResets, OutRsts,`},
	} {
		_, err := parseAlerts([]string{"AttemptFails>1", tt.expr})
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseAlerts(%q) error %v is not a usage error", tt.expr, err)
		}
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("parseAlerts(%q) error %q, want %q...", tt.expr, err, tt.want)
		}
	}
	rules, err := parseAlerts([]string{"AttemptFails>2/s", "listenoverflows>0"})
	if err != nil || len(rules) != 2 || rules[1].Text != "ListenOverflows>0" {
		t.Errorf("parseAlerts = %v, %v", rules, err)
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
		"ALERT AttemptFails>1/s: AttemptFails rose by 5 in 500ms (10.0/s), holding since 17:40:20; it counts " + counters.Catalogue()[0].Meaning + "\n" +
		"\n" +
		"17:40:21.500  interval 500ms\n" +
		"COUNTER       TOTAL  DELTA  RATE/s\n" +
		"AttemptFails     10      5    10.0\n" +
		"OutRsts           0      0     0.0\n" +
		"ALERT AttemptFails>1/s: AttemptFails rose by 5 in 500ms (10.0/s), holding since 17:40:20; it counts " + counters.Catalogue()[0].Meaning + "\n" +
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
