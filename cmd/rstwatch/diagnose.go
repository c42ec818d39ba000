package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/diagnose"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/sniff/pipeline"
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

Exit status: 0 when nothing abnormal was seen (resets closing completed exchanges, such as a
health checker's, are notes), 3 when a finding or an --alert rule fired, 1 or 2 on errors.

Examples:
   rstwatch diagnose                          ten seconds, then the report
   rstwatch diagnose --duration 1m --json     one JSON document
   rstwatch diagnose --alert 'AttemptFails>2/s' --port 7211
   rstwatch diagnose -r capture.pcapng        findings from a capture file (packets only)`,
		Flags: append([]cli.Flag{
			durationFlag(flagDuration, defaultDiagnoseDuration, "how long to watch, `D` (Ctrl-C ends early)"),
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
	if durationOf(c, flagDuration) < 0 {
		return usagef("invalid --%s %v: want more than 0", flagDuration, durationOf(c, flagDuration))
	}
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	if c.Bool(flagAllNetns) {
		return usagef("diagnose looks into one network namespace: use --%s or --%s, not --%s", flagNetns, flagPid, flagAllNetns)
	}
	offline := c.String(flagRead) != ""
	// One window: it opens, and c0 is read, as the capture is armed.
	var c0, start, c0err = proc.Counters(nil), time.Now(), error(nil)
	s, err := openSession(ctx, c, func(s *session) { start = time.Now(); c0, c0err = s.counters() })
	if err != nil {
		return err
	}
	defer s.close()
	if !offline {
		if c0err != nil {
			fmt.Fprintf(c.App.ErrWriter, "kernel counters unavailable, the report uses the resets alone: %v\n", c0err)
		}
		stopAfter(durationOf(c, flagDuration), cancel)
	}

	var mu sync.Mutex // d is fed by the capture and by the listener sampler
	d := diagnose.New(start, c0)
	d.Offline = offline
	if !offline {
		// One window: what the capture held from before c0 is left out.
		d.Since, d.Sysctls = d.Start, s.target.Sysctls(s.fs, diagnose.SysctlNames)
	}
	x := s.pipe.Explainer()
	if x != nil {
		sample := func() {
			if ls, err := x.Listeners(); err == nil {
				mu.Lock()
				d.SampleListeners(ls)
				mu.Unlock()
			}
		}
		sample()
		go every(ctx, listenerSampleEvery, sample)
	}
	var progress *diagnose.Progress
	if isTerminal(c.App.ErrWriter) {
		progress = diagnose.NewProgress(c.App.ErrWriter, s.counters, c0)
		if !offline {
			go every(ctx, 500*time.Millisecond, progress.Show)
		}
	}

	var n int
	_, runErr := s.run(ctx, 0, sinkFunc(func(e *pipeline.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if !e.IsReset() {
			d.Observe(&e.Event)
			return nil
		}
		d.Add(&e.Event, &e.Verdict)
		if progress != nil {
			progress.Resets.Store(int64(n + 1))
		}
		n++
		return nil
	}))
	mu.Lock()
	defer mu.Unlock()
	// The capture has stopped: read the counters at once, so that they
	// and the resets cover the same window.
	d.End = time.Now()
	if c0 != nil {
		if d.C1, err = s.counters(); err != nil {
			d.C0 = nil
		}
	}
	if progress != nil {
		progress.Clear()
	}
	if ferr := s.finish(); runErr == nil {
		runErr = ferr
	}
	if offline {
		d.Start, d.End = d.FileSpan()
	}
	if c0 != nil {
		if up, err := s.fs.Uptime(); err == nil {
			d.Uptime = up
		}
	}
	if x != nil {
		if ls, err := x.Listeners(); err == nil {
			d.SampleListeners(ls)
		}
	}
	if !offline {
		if st := s.pipe.Stats(); st.Err == nil {
			d.Drops = st.Drops
		}
	}
	d.EvalAlerts(rules)

	r := d.Report()
	if c.Bool(flagJSON) {
		if err := r.WriteJSON(s.stdout); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	} else if _, err := io.WriteString(s.stdout, r.Text()); err != nil {
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
