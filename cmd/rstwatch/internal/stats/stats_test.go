package stats

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
)

// fakeStats runs Run over canned counter readings, one per tick, 500ms
// apart, starting at 17:40:20 UTC.
func fakeStats(t *testing.T, asJSON bool, count int, exprs []string, readings ...proc.Counters) (stdout, stderr string, fired bool, err error) {
	t.Helper()
	var rules []counters.Rule
	for _, e := range exprs {
		r, err := counters.ParseRule(e)
		if err != nil {
			t.Fatalf("failed to parse alert %q: %v", e, err)
		}
		rules = append(rules, r)
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
	s := &Run{Out: &out, ErrOut: &errOut, JSON: asJSON, Count: count, Rules: rules, Ticks: ticks,
		Read: func() (proc.Counters, error) {
			c := readings[next]
			next++
			if next == len(readings) {
				cancel()
			}
			return c, nil
		}}
	fired, err = s.Run(ctx, readings[0], start)
	return out.String(), errOut.String(), fired, err
}

func TestStatsRunAlerts(t *testing.T) {
	c := func(fails uint64) proc.Counters { return proc.Counters{"Tcp.AttemptFails": fails, "Tcp.OutRsts": 0} }
	// Rates per 500ms interval: 0, 10/s, 10/s, 0.
	stdout, stderr, fired, err := fakeStats(t, false, 4, []string{"AttemptFails>1/s", "OutRsts>0"}, c(0), c(0), c(5), c(10), c(10))
	if err != nil || !fired {
		t.Fatalf("Run returned %v, %v; want a rule fired", fired, err)
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
	stdout, stderr, fired, err := fakeStats(t, true, 0, []string{"AttemptFails>1/s"}, c(3), c(3), c(3))
	if err != nil || fired {
		t.Fatalf("Run returned %v, %v; want no rule fired", fired, err)
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
	stdout, stderr, fired, err := fakeStats(t, true, 1, []string{"AttemptFails>1/s"}, c(0), c(4))
	if err != nil || !fired {
		t.Fatalf("Run returned %v, %v; want a rule fired", fired, err)
	}
	if strings.Contains(stdout, "ALERT") || !strings.Contains(stdout, `"alerts":[{"rule":"AttemptFails>1/s"`) {
		t.Errorf("stdout %q: want JSON only, with the alert in it", stdout)
	}
	if !strings.HasPrefix(stderr, "ALERT AttemptFails>1/s: AttemptFails rose by 4 in 500ms (8.0/s)") ||
		!strings.HasSuffix(stderr, "\n1 alert rule fired: AttemptFails>1/s (in 1 of 1 intervals)\n") {
		t.Errorf("stderr %q", stderr)
	}
}
