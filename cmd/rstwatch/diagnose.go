package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

const defaultDiagnoseDuration = 10 * time.Second

func diagnoseCommand() *cli.Command {
	return &cli.Command{
		Name:      "diagnose",
		Usage:     "watch for a while, then say in plain words why TCP connections fail",
		UsageText: "rstwatch diagnose [--duration D] [--json] [--alert EXPR]... [-i NAME]... [--port N]... [--host ADDR]...",
		Description: `Captures resets on all interfaces with attribution for --duration (Ctrl-C ends early and
still reports), samples the kernel's TCP counters at the start and the end, watches the
listeners' accept queues, and prints a report: the failed-connection rate and whether it is
new, findings ranked by how many failures they explain (each with the next step to take),
and what the resets do not explain (handshakes dropped by full accept queues, SYN timeouts,
resets a firewall sent).

Exit status: 0 when nothing abnormal was seen, 3 when a finding or an --alert rule fired,
1 or 2 on errors.

Examples:
   rstwatch diagnose                          ten seconds, then the report
   rstwatch diagnose --duration 1m --json     one JSON document
   rstwatch diagnose --alert 'AttemptFails>2/s' --port 7211
   rstwatch diagnose -r capture.pcapng        findings from a capture file (packets only)`,
		Flags: append([]cli.Flag{
			&cli.DurationFlag{Name: flagDuration, Value: defaultDiagnoseDuration, Usage: "how long to watch, `D` (Ctrl-C ends early)"},
			&cli.BoolFlag{Name: flagJSON, Usage: "print the report as one JSON document"},
			&cli.StringSliceFlag{Name: flagAlert, Usage: "also fire when counter rule `EXPR` holds over the run, e.g. 'AttemptFails>2/s' (repeatable)"},
		}, sessionFlags()...),
		Action: runDiagnose,
	}
}

// listenerSampleEvery is how often diagnose samples the listeners' queues.
const listenerSampleEvery = 250 * time.Millisecond

func runDiagnose(c *cli.Context) error {
	rules, err := parseAlerts(c.StringSlice(flagAlert))
	if err != nil {
		return err
	}
	if c.Duration(flagDuration) < 0 {
		return usagef("invalid --%s %v: want more than 0", flagDuration, c.Duration(flagDuration))
	}
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	if c.Bool(flagAllNetns) {
		return usagef("diagnose looks into one network namespace: use --%s or --%s, not --%s", flagNetns, flagPid, flagAllNetns)
	}
	offline := c.String(flagRead) != ""
	s, err := openSession(ctx, c)
	if err != nil {
		return err
	}
	defer s.close()
	var c0 proc.Counters
	if !offline {
		if c0, err = s.counters(); err != nil {
			fmt.Fprintf(c.App.ErrWriter, "kernel counters unavailable, the report uses the resets alone: %v\n", err)
		}
		stopAfter(c.Duration(flagDuration), cancel)
	}

	var mu sync.Mutex // d is fed by the capture and by the listener sampler
	d := newDiagnosis(time.Now(), c0)
	d.offline = offline
	var x *explain.Explainer
	if !offline {
		x = s.captures[0].explainer
	}
	if x != nil {
		sample := func() {
			if ls, err := x.Listeners(); err == nil {
				mu.Lock()
				d.sampleListeners(ls)
				mu.Unlock()
			}
		}
		sample()
		go every(ctx, listenerSampleEvery, sample)
	}
	progress := newProgress(c.App.ErrWriter, s.counters, c0)
	if progress != nil && !offline {
		go every(ctx, 500*time.Millisecond, progress.show)
	}

	var n int
	_, runErr := s.run(ctx, 0, func(e *sniff.Event, v *explain.Verdict, _ *nsTarget) error {
		mu.Lock()
		d.add(e, v)
		mu.Unlock()
		if progress != nil {
			progress.resets.Store(int64(n + 1))
		}
		n++
		return nil
	}, nil)
	if progress != nil {
		progress.clear()
	}
	if ferr := s.finish(); runErr == nil {
		runErr = ferr
	}

	mu.Lock()
	defer mu.Unlock()
	d.end = time.Now()
	if offline {
		d.start, d.end = offlineSpan(d)
	}
	if c0 != nil {
		if d.c1, err = s.counters(); err != nil {
			d.c0 = nil
		}
		d.uptime = uptime(s.fs)
	}
	if x != nil {
		if ls, err := x.Listeners(); err == nil {
			d.sampleListeners(ls)
		}
	}
	if !offline {
		if st, err := s.captures[0].live.Stats(); err == nil {
			d.drops = st.Drops
		}
	}
	for _, row := range counters.Rows(nil, d.c0, d.c1, d.end.Sub(d.start)) {
		for i := range rules {
			if rules[i].Counter == row.Info && rules[i].Holds(row) {
				d.alerts = append(d.alerts, fmt.Sprintf("%s: %s rose by %d in %s (%.2f/s); it counts %s",
					rules[i].Text, row.Info.Name, row.Delta, row.Elapsed.Round(time.Millisecond), row.Rate, row.Info.Meaning))
			}
		}
	}

	r := d.report()
	if c.Bool(flagJSON) {
		enc := json.NewEncoder(s.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	} else if _, err := io.WriteString(s.stdout, reportText(r)); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if runErr != nil {
		return runErr
	}
	if r.Abnormal {
		return alertError{}
	}
	return nil
}

// offlineSpan is the time the resets in a file span (1s when fewer than two).
func offlineSpan(d *diagnosis) (time.Time, time.Time) {
	var first, last time.Time
	for _, g := range d.groups {
		if first.IsZero() || g.first.Before(first) {
			first = g.first
		}
		if g.last.After(last) {
			last = g.last
		}
	}
	if first.IsZero() || !last.After(first) {
		return first, first.Add(time.Second)
	}
	return first, last
}

// every calls fn every period until ctx ends.
func every(ctx context.Context, period time.Duration, fn func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// uptime reads the seconds since boot from /proc/uptime (0 if unknown).
func uptime(fs proc.FS) float64 {
	b, err := os.ReadFile(fs.Path("uptime"))
	if err != nil {
		return 0
	}
	f, err := strconv.ParseFloat(strings.Fields(string(b) + " 0")[0], 64)
	if err != nil {
		return 0
	}
	return f
}

// reportText renders the report for a person.
func reportText(r *report) string {
	var b strings.Builder
	if r.Offline {
		fmt.Fprintf(&b, "rstwatch diagnose (offline, from the packets and handshakes in the file): %d resets over %.2fs\n", r.Headline.ResetsTotal, r.DurationS)
	} else {
		fmt.Fprintf(&b, "rstwatch diagnose: %d resets in %.2fs\n", r.Headline.ResetsTotal, r.DurationS)
		b.WriteString(r.Headline.Text + "\n")
	}
	if !r.Abnormal {
		b.WriteString("\nNothing abnormal: no TCP resets, no failed connections the resets do not explain, no alert.\n")
		return b.String()
	}
	if len(r.Findings) > 0 {
		b.WriteString("\nFindings, most failures first:\n")
	}
	for i, f := range r.Findings {
		fmt.Fprintf(&b, "%d. %s %s", i+1, f.Cause, f.Local)
		if f.Service != "" {
			fmt.Fprintf(&b, " (%s)", f.Service)
		}
		fmt.Fprintf(&b, ": %d (%.2f/s)", f.Count, f.RatePerS)
		if f.Direction != "" {
			fmt.Fprintf(&b, ", %s", f.Direction)
		}
		if len(f.Ifnames) > 0 {
			fmt.Fprintf(&b, " on %s", safe.Text(strings.Join(f.Ifnames, ", ")))
		}
		fmt.Fprintf(&b, "\n   %s\n", f.Advice)
		if len(f.Peers) > 0 {
			var ps []string
			for _, p := range f.Peers {
				ps = append(ps, fmt.Sprintf("%s (%d)", p.Addr, p.Count))
			}
			fmt.Fprintf(&b, "   peers: %s\n", strings.Join(ps, ", "))
		}
		if len(f.Processes) > 0 {
			var ps []string
			for _, p := range f.Processes {
				s := fmt.Sprintf("%s %s pid %d", strings.ReplaceAll(p.Role, "_", " "), safe.Text(p.Comm), p.PID)
				if p.Until != nil {
					s += " until " + p.Until.Format("15:04:05")
				}
				ps = append(ps, s)
			}
			fmt.Fprintf(&b, "   processes: %s\n", strings.Join(ps, "; "))
		}
	}
	if len(r.Unexplained) > 0 {
		b.WriteString("\nNot explained by the resets:\n")
		for _, u := range r.Unexplained {
			fmt.Fprintf(&b, "- %s\n", u.Text)
		}
	}
	if len(r.Alerts) > 0 {
		b.WriteString("\nAlerts:\n")
		for _, a := range r.Alerts {
			fmt.Fprintf(&b, "- ALERT %s\n", a)
		}
	}
	if r.Drops > 0 {
		fmt.Fprintf(&b, "\nThe kernel dropped %d packets of the capture: the counts above are low.\n", r.Drops)
	}
	return b.String()
}

// progress is diagnose's live line on a terminal: elapsed time, resets so
// far and the current failed-connection rate.
type progress struct {
	w      io.Writer
	read   func() (proc.Counters, error)
	start  time.Time
	resets atomic.Int64

	mu       sync.Mutex
	last     proc.Counters
	lastAt   time.Time
	rate     float64
	drawnLen int
}

// newProgress returns nil unless w is a terminal.
func newProgress(w io.Writer, read func() (proc.Counters, error), c0 proc.Counters) *progress {
	if !isTerminal(w) {
		return nil
	}
	return &progress{w: w, read: read, start: time.Now(), last: c0, lastAt: time.Now()}
}

func (p *progress) show() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.lastAt) >= time.Second && p.last != nil {
		if c, err := p.read(); err == nil {
			for _, row := range counters.Rows(nil, p.last, c, now.Sub(p.lastAt)) {
				if row.Info.Name == "AttemptFails" {
					p.rate = row.Rate
				}
			}
			p.last, p.lastAt = c, now
		}
	}
	line := fmt.Sprintf("%5.1fs elapsed, %d resets, %.1f failed connections/s", now.Sub(p.start).Seconds(), p.resets.Load(), p.rate)
	fmt.Fprintf(p.w, "\r%-*s", p.drawnLen, line)
	p.drawnLen = len(line)
}

// clear erases the line before the report is printed.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawnLen > 0 {
		fmt.Fprintf(p.w, "\r%*s\r", p.drawnLen, "")
	}
}
