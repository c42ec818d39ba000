package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// eventSource is a live capture or a capture file.
type eventSource interface {
	Next(*sniff.Event) error
	Buffered() int
}

// session is what a capturing command (watch, diagnose) has open: the
// events' source, the explainer, the capture file and the metrics, set up
// from the shared flags. close releases them in reverse order.
type session struct {
	src       eventSource
	live      *sniff.Sniffer     // nil offline
	explainer *explain.Explainer // nil offline or with --no-explain
	file      *captureFile       // -w, or nil
	metrics   *metrics           // --metrics, or nil
	offline   bool
	// stdout is where text goes: io.Discard when -w - owns stdout.
	stdout  io.Writer
	stderr  io.Writer
	drops   atomic.Uint64 // kernel drops, for the metrics goroutine
	closers []func()
}

// openSession opens everything the flags ask for. On error, what was
// opened is closed again.
func openSession(ctx context.Context, c *cli.Context) (_ *session, err error) {
	cfg, err := captureFlags(c)
	if err != nil {
		return nil, err
	}
	if c.Bool(flagPcap) && c.String(flagWrite) == "" {
		return nil, usagef("--%s needs -w FILE", flagPcap)
	}
	s := &session{stdout: c.App.Writer, stderr: c.App.ErrWriter}
	defer func() {
		if err != nil {
			s.close()
		}
	}()

	// The capture file and the metrics listener first, as tcpdump checks
	// its file first: a bad path or address fails before anything is
	// captured or printed.
	if path := c.String(flagWrite); path != "" {
		if s.file, err = createCaptureFile(path, c.Bool(flagPcap), c.App.Writer); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { s.file.close() })
		if path == stdio {
			s.stdout = io.Discard // stdout carries the capture file only
		}
	}
	if addr := c.String(flagMetrics); addr != "" {
		fs, err := proc.NewFS(proc.DefaultRoot)
		if err != nil {
			return nil, err
		}
		s.metrics = newMetrics(fs)
		s.metrics.setCaptureDrops(s.drops.Load)
		stop, err := startMetrics(ctx, addr, s.metrics)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, stop)
	}

	if path := c.String(flagRead); path != "" {
		if len(cfg.Interfaces) > 0 {
			return nil, usagef("-i selects live interfaces; it cannot be used with -r")
		}
		fr, closer, err := openReadFile(path, cfg.Filter, os.Stdin)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { closer.Close() })
		s.src, s.offline = fr, true
		return s, nil
	}

	if b := c.Int(flagExplainBudget); b < -1 {
		return nil, usagef("invalid --%s %d: want -1 (no limit) or more", flagExplainBudget, b)
	}
	if !c.Bool(flagNoExplain) {
		s.explainer = openExplainer(c.App.ErrWriter, &explain.Config{Budget: c.Int(flagExplainBudget)})
	}
	if s.explainer != nil {
		s.closers = append(s.closers, func() { s.explainer.Close() })
		// Outgoing SYNs let the explainer see a refused client's socket
		// while it exists.
		cfg.Filter.SYN = true
		go s.explainer.Run(ctx)
	}
	if s.live, err = openCapture(cfg); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { s.live.Close() })
	fmt.Fprintln(c.App.ErrWriter, listeningLine(cfg, s.live.Interfaces()))
	// Ending the context unblocks Next through a deadline in the past.
	stop := context.AfterFunc(ctx, func() { _ = s.live.SetReadDeadline(time.Unix(1, 0)) })
	s.closers = append(s.closers, func() { stop() })
	s.src = s.live
	return s, nil
}

// close releases what openSession opened, last first.
func (s *session) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// finish flushes the capture file and returns its error, if any.
func (s *session) finish() error {
	if s.file == nil {
		return nil
	}
	return s.file.close()
}

// run reads segments until ctx ends, the source is exhausted or limit
// resets were handled (0: no limit). Each reset is explained, counted in
// the metrics, written to the capture file and handed to onReset; SYNs
// kept for attribution only feed the explainer and the file. idle runs
// whenever the source has nothing more buffered, before it may block: the
// moment to flush output. run returns the number of resets.
func (s *session) run(ctx context.Context, limit int, onReset func(*sniff.Event, *explain.Verdict) error, idle func() error) (int, error) {
	var (
		ev sniff.Event
		v  explain.Verdict
		n  int
	)
	for (limit == 0 || n < limit) && ctx.Err() == nil {
		if err := s.src.Next(&ev); err != nil {
			switch {
			case errors.Is(err, io.EOF):
				return n, nil
			case ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded):
				return n, nil
			}
			return n, err
		}
		if !ev.Flags.Has(sniff.FlagRST) {
			// A SYN passed for attribution: not reported, but kept in
			// the capture file, marked.
			if s.explainer != nil {
				s.explainer.Observe(&ev)
			}
			if s.file != nil {
				if err := s.file.write(&ev, synComment); err != nil {
					return n, err
				}
			}
			continue
		}
		n++
		explainReset(s.explainer, &ev, &v, s.offline)
		if s.metrics != nil {
			s.metrics.observeReset(v.Cause.String(), ev.Direction.String(), ev.Src.Port())
		}
		if err := onReset(&ev, &v); err != nil {
			return n, err
		}
		if s.file != nil {
			if err := s.file.write(&ev, verdictComment(&v)); err != nil {
				return n, err
			}
		}
		if s.src.Buffered() == 0 {
			if err := s.idle(idle); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// idle flushes the capture file, refreshes the drop count for the metrics
// and runs the caller's idle function.
func (s *session) idle(fn func() error) error {
	if s.file != nil {
		if err := s.file.flush(); err != nil {
			return err
		}
	}
	if s.metrics != nil && s.live != nil {
		if st, err := s.live.Stats(); err == nil {
			s.drops.Store(st.Drops)
		}
	}
	if fn != nil {
		return fn()
	}
	return nil
}

// reportCapture prints the closing summary, as tcpdump does, and how many
// resets attribution left to the packet alone.
func (s *session) reportCapture(n int) {
	st, err := s.live.Stats()
	if err != nil {
		fmt.Fprintf(s.stderr, "%d resets captured (kernel statistics unavailable: %v)\n", n, err)
	} else {
		fmt.Fprintf(s.stderr, "%d resets captured, %d dropped by kernel\n", n, st.Drops)
		fmt.Fprintf(s.stderr, "%d packets received by filter\n", st.Packets)
	}
	if s.explainer != nil {
		if k := s.explainer.Sampled(); k > 0 {
			fmt.Fprintf(s.stderr, "%d resets or SYNs explained from the packet alone: attribution was over its budget (--%s)\n", k, flagExplainBudget)
		}
	}
}

// synComment marks the SYNs a capture file holds only for attribution.
const synComment = "rstwatch: SYN kept for attribution"

// openExplainer starts attribution; when it cannot (no sock_diag, no /proc),
// the command goes on with causes from the packets alone and says so once.
func openExplainer(stderr io.Writer, cfg *explain.Config) *explain.Explainer {
	x, err := explain.Open(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "attribution unavailable, causes come from the packets alone: %v\n", err)
		return nil
	}
	return x
}

// explainReset fills v for a reset: from the kernel's state when x is set,
// else from the packet alone (offline: read from a capture file).
func explainReset(x *explain.Explainer, e *sniff.Event, v *explain.Verdict, offline bool) {
	if x != nil {
		x.Explain(e, v)
		return
	}
	*v = explain.Verdict{Cause: explain.WireCause(&e.Segment), Offline: offline}
}

// verdictComment is the pcapng packet comment that carries the attribution.
func verdictComment(v *explain.Verdict) string {
	c := "rstwatch: cause=" + v.Cause.String()
	if p := &v.Sender.Process; p.Owned {
		c += " sender=" + p.Comm + "/" + strconv.Itoa(p.PID)
	}
	if p := &v.Target.Process; p.Owned {
		c += " target=" + p.Comm + "/" + strconv.Itoa(p.PID)
	}
	return c
}

// stopAfter ends a capture d after it was armed (0: never), so that
// --duration counts capture time, not set-up time.
func stopAfter(d time.Duration, cancel context.CancelFunc) {
	if d > 0 {
		time.AfterFunc(d, cancel)
	}
}
