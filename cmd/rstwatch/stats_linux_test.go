package main

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc/netns"
	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
)

// TestIntegrationStats runs `rstwatch stats` in a fresh namespace: refused
// connects make the AttemptFails rule fire (exit 3), no traffic keeps it
// quiet (exit 0), a bad rule is a usage error (exit 2).
func TestIntegrationStats(t *testing.T) {
	t.Run("alert_fires", func(t *testing.T) {
		t.Parallel()
		ns := netnstest.New(t)
		// Refused connects to 127.0.0.1:7211 every 100ms, for at most 3s.
		stop, done := make(chan struct{}), make(chan int)
		go func() {
			attempts := 0
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			limit := time.After(3 * time.Second)
			for {
				select {
				case <-stop:
					done <- attempts
					return
				case <-limit:
					done <- attempts
					return
				case <-tick.C:
				}
				netns.Do(ns.Path, func() error {
					if c, err := net.DialTimeout("tcp", "127.0.0.1:7211", time.Second); err == nil {
						c.Close()
					}
					return nil
				})
				attempts++
			}
		}()
		stdout, stderr, code := run(t, ns.Command(binary, "stats", "--interval", "500ms", "-c", "3", "--alert", "AttemptFails>1/s", "--json"))
		close(stop)
		attempts := <-done
		if code != exitAlert {
			t.Fatalf("exit code %d, want %d; stderr %q", code, exitAlert, stderr)
		}
		lines := jsonLines(t, stdout)
		if len(lines) != 3 {
			t.Fatalf("got %d JSON lines, want 3:\n%s", len(lines), stdout)
		}
		var fails uint64
		alerted := 0
		for i, m := range lines {
			counters, ok := m["counters"].(map[string]any)
			if !ok {
				t.Fatalf("line %d: no counters object: %v", i, m)
			}
			for _, name := range []string{"AttemptFails", "OutRsts", "ActiveOpens", "ListenOverflows"} {
				if _, ok := counters[name].(map[string]any); !ok {
					t.Errorf("line %d lacks counter %s", i, name)
				}
			}
			fails += num(t, counters["AttemptFails"].(map[string]any), "delta")
			if alerts, _ := m["alerts"].([]any); len(alerts) > 0 {
				alerted++
			}
		}
		// In a fresh namespace only our connects fail.
		if fails < 5 || fails > uint64(attempts) {
			t.Errorf("AttemptFails rose by %d over the run, want between 5 and the %d attempts", fails, attempts)
		}
		if alerted == 0 {
			t.Errorf("no JSON line carries an alert:\n%s", stdout)
		}
		alertLine := regexp.MustCompile(`(?m)^ALERT AttemptFails>1/s: AttemptFails rose by \d+ in \d+(\.\d+)?m?s \(\d+\.\d/s\), holding since \d\d:\d\d:\d\d; it counts connections this host started that failed`)
		if !alertLine.MatchString(stderr) {
			t.Errorf("stderr has no alert line:\n%s", stderr)
		}
		if !strings.Contains(stderr, "1 alert rule fired: AttemptFails>1/s (in ") {
			t.Errorf("stderr lacks the summary:\n%s", stderr)
		}
	})

	t.Run("quiet", func(t *testing.T) {
		t.Parallel()
		ns := netnstest.New(t)
		stdout, stderr, code := run(t, ns.Command(binary, "stats", "--interval", "200ms", "-c", "2", "--alert", "AttemptFails>1/s", "--json"))
		if code != exitOK || stderr != "" {
			t.Fatalf("exit code %d, stderr %q; want 0 and nothing", code, stderr)
		}
		lines := jsonLines(t, stdout)
		if len(lines) != 2 {
			t.Fatalf("got %d JSON lines, want 2:\n%s", len(lines), stdout)
		}
		for i, m := range lines {
			if alerts, ok := m["alerts"].([]any); !ok || len(alerts) != 0 {
				t.Errorf("line %d: alerts %v, want []", i, m["alerts"])
			}
			if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["time"])); err != nil {
				t.Errorf("line %d: time %v: %v", i, m["time"], err)
			}
		}
	})

	t.Run("text", func(t *testing.T) {
		t.Parallel()
		ns := netnstest.New(t)
		stdout, stderr, code := run(t, ns.Command(binary, "stats", "--interval", "100ms", "-c", "2"))
		if code != exitOK || stderr != "" {
			t.Fatalf("exit code %d, stderr %q; want 0 and nothing", code, stderr)
		}
		// Not a terminal: plain blocks, no escape sequences.
		blocks := strings.Split(stdout, "\n\n")
		if len(blocks) != 2 || strings.Contains(stdout, "\x1b") {
			t.Fatalf("want 2 plain blocks:\n%q", stdout)
		}
		for _, b := range blocks {
			lines := strings.Split(strings.TrimSuffix(b, "\n"), "\n")
			if len(lines) < 3 || !strings.Contains(lines[0], "  interval ") || !regexp.MustCompile(`^COUNTER +TOTAL +DELTA +RATE/s$`).MatchString(lines[1]) {
				t.Fatalf("block:\n%s", b)
			}
			if !slices.ContainsFunc(lines, func(l string) bool { return regexp.MustCompile(`^AttemptFails +0 +0 +0\.0$`).MatchString(l) }) {
				t.Errorf("block lacks a quiet AttemptFails row:\n%s", b)
			}
		}
	})

	t.Run("bad_expression", func(t *testing.T) {
		t.Parallel()
		ns := netnstest.New(t)
		stdout, stderr, code := run(t, ns.Command(binary, "stats", "--alert", "AttemptFails=>2/s"))
		assertOneLineError(t, stdout, stderr, code, exitUsage, `invalid --alert "AttemptFails=>2/s": use == to compare for equality`)
	})
}
