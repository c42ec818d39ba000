package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/capfile"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/caps"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/metrics"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/render"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
	"github.com/rstwatch/rstwatch/proc/namespaces"
	"github.com/rstwatch/rstwatch/proc/netns"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/pipeline"
)

// session is what a capturing command (watch, diagnose) has open, set up
// from the shared flags: the pipeline, the capture file being written and
// the metrics. close releases them in reverse order.
type session struct {
	pipe    *pipeline.Pipeline
	file    *capfile.Writer   // -w, or nil
	metrics *metrics.Registry // --metrics, or nil
	// stdout is where text goes: io.Discard when -w - owns stdout.
	stdout  io.Writer
	stderr  io.Writer
	closers []func()

	// target is the namespace watched with --netns/--pid (nil: our own,
	// or every one with --all-netns).
	target   *namespaces.Target
	allNetns bool
	cfg      sniff.Config
	fs       proc.FS
}

// openSession opens everything the flags ask for; armed, if any, run when
// a live capture is armed, before rstwatch says so. On error, what was
// opened is closed again.
func openSession(ctx context.Context, c *cli.Context, armed ...func(*session)) (_ *session, err error) {
	cfg, err := captureFlags(c)
	if err != nil {
		return nil, err
	}
	if c.Bool(flagPcap) && c.String(flagWrite) == "" {
		return nil, usagef("--%s needs -w FILE", flagPcap)
	}
	read := c.String(flagRead)
	if read != "" && len(cfg.Interfaces) > 0 {
		return nil, usagef("-i selects live interfaces; it cannot be used with -r")
	}
	if c.Bool(flagAllNetns) && (c.IsSet(flagNetns) || c.IsSet(flagPid)) {
		return nil, usagef("--%s watches every namespace: it cannot be used with --%s or --%s", flagAllNetns, flagNetns, flagPid)
	}
	if b := c.Int(flagExplainBudget); b < -1 {
		return nil, usagef("invalid --%s %d: want -1 (no limit) or more", flagExplainBudget, b)
	}
	s := &session{stdout: c.App.Writer, stderr: c.App.ErrWriter, cfg: *cfg, allNetns: c.Bool(flagAllNetns)}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	// A capture file needs no /proc; a live capture does.
	fs, fserr := proc.NewFS(proc.DefaultRoot)
	if fserr != nil && read == "" {
		return nil, fserr
	}
	s.fs = fs

	// The capture file and the metrics listener first, as tcpdump checks
	// its file first: a bad path or address fails before anything is
	// captured or printed.
	if path := c.String(flagWrite); path != "" {
		if s.file, err = capfile.Create(path, c.Bool(flagPcap), c.App.Writer, read); err != nil {
			if errors.Is(err, capfile.ErrSameFile) || errors.Is(err, capfile.ErrSymlink) {
				return nil, usageError{err}
			}
			return nil, err
		}
		s.closers = append(s.closers, func() { s.file.Close() })
		if path == pipeline.Stdio {
			s.stdout = io.Discard // stdout carries the capture file only
		}
	}
	if read == "" {
		if s.target, err = resolveNamespace(c, s.fs); err != nil {
			return nil, err
		}
	}
	pcfg := &pipeline.Config{
		Capture:    *cfg,
		Read:       read,
		Stdin:      os.Stdin,
		Netns:      s.target,
		AllNetns:   s.allNetns,
		Proc:       s.fs,
		Explain:    !c.Bool(flagNoExplain),
		Handshakes: c.Command != nil && c.Command.Name == "diagnose", // roles, for diagnose
		Budget:     c.Int(flagExplainBudget),
		Notify:     s.notify,
	}
	if read == "" {
		if addr := c.String(flagMetrics); addr != "" {
			// The kernel counters served are the watched namespace's.
			s.metrics = metrics.New(s.target.FS(s.fs))
			stop, err := startMetrics(ctx, addr, s.metrics)
			if err != nil {
				return nil, err
			}
			s.closers = append(s.closers, stop)
		}
	}
	s.pipe, err = pipeline.Open(ctx, pcfg)
	if err != nil {
		return nil, captureError(err)
	}
	s.closers = append(s.closers, s.pipe.Close)
	if read != "" {
		// Reading a file needs no privilege at all.
		_ = caps.Drop()
		return s, nil
	}
	if s.metrics != nil {
		s.metrics.SetCaptureDrops(s.pipe.Drops)
	}
	// Everything is open: keep only what the run still needs. Entering
	// another namespace again (its addresses and interface names are
	// re-read; --all-netns opens new captures) needs CAP_SYS_ADMIN.
	if err := caps.Drop(caps.Runtime(s.allNetns || s.target != nil)...); err != nil {
		fmt.Fprintf(s.stderr, "could not drop capabilities: %v\n", err) // not fatal
	}
	for _, fn := range armed {
		fn(s)
	}
	fmt.Fprintln(s.stderr, s.listeningLine())
	if x := s.pipe.Explainer(); x != nil {
		// The explainer's first owner scan is done: say once if it could
		// not read some processes.
		if note := caps.OwnersNote(x.Owners().Stats(), caps.Effective()); note != "" {
			fmt.Fprintln(s.stderr, note)
		}
	}
	return s, nil
}

// captureError turns the pipeline's failures into the errors a user can
// act on.
func captureError(err error) error {
	var (
		unknown *sniff.UnknownInterfaceError
		enter   *netns.EnterError
	)
	switch {
	case errors.As(err, &unknown):
		return usageError{unknown}
	case errors.As(err, &enter) && errors.Is(err, os.ErrPermission):
		return namespacePrivilegeError(enter.Path, err)
	case errors.Is(err, os.ErrPermission):
		return privilegeError(err)
	}
	return err
}

// notify prints the pipeline's informational lines, escaped.
func (s *session) notify(format string, args ...any) {
	for i, a := range args {
		if str, ok := a.(string); ok {
			args[i] = safe.Text(str)
		}
	}
	fmt.Fprintf(s.stderr, format+"\n", args...)
}

// listeningLine is what rstwatch says on stderr once the capture is armed.
func (s *session) listeningLine() string {
	if s.allNetns {
		nss := s.pipe.Namespaces()
		names := make([]string, len(nss))
		for i, t := range nss {
			names[i] = safe.Text(t.Name)
		}
		return fmt.Sprintf("listening on all interfaces of %s (%s; new ones as they appear), capturing TCP resets",
			render.Plural(len(nss), "network namespace"), strings.Join(names, ", "))
	}
	line := listeningLine(&s.cfg, s.pipe.Interfaces())
	if s.target != nil {
		line = strings.Replace(line, ", capturing", fmt.Sprintf(" in network namespace %s, capturing", safe.Text(s.target.Name)), 1)
	}
	return line
}

// run runs the pipeline into the session's sinks around out: the metrics
// first, the capture file last, as a reset is counted, shown, then kept.
func (s *session) run(ctx context.Context, limit int, out ...pipeline.Sink) (int, error) {
	var sinks []pipeline.Sink
	if s.metrics != nil {
		sinks = append(sinks, metricsSink{s.metrics})
	}
	sinks = append(sinks, out...)
	if s.file != nil {
		sinks = append(sinks, s.file)
	}
	return s.pipe.Run(ctx, limit, sinks...)
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
	return s.file.Close()
}

// reportCapture prints the closing summary, as tcpdump does, summed over
// the captures, and how many resets attribution left to the packet alone.
func (s *session) reportCapture(n int) {
	if f := s.pipe.File(); f != nil {
		fmt.Fprintf(s.stderr, "%d resets in %s (%d packets read)\n", n, safe.Text(f.Name), f.Packets)
		return
	}
	st := s.pipe.Stats()
	if st.Err != nil {
		fmt.Fprintf(s.stderr, "%d resets captured (kernel statistics unavailable: %v)\n", n, st.Err)
	} else {
		fmt.Fprintf(s.stderr, "%d resets captured, %d dropped by kernel\n", n, st.Drops)
		fmt.Fprintf(s.stderr, "%d packets received by filter\n", st.Packets)
	}
	if st.Failed > 0 {
		fmt.Fprintf(s.stderr, "%d failures without a reset (SYNs or SYN-ACKs sent again, ICMP errors)\n", st.Failed)
	}
	if st.Sampled > 0 {
		fmt.Fprintf(s.stderr, "%d resets or SYNs explained from the packet alone: attribution was over its budget (--%s)\n", st.Sampled, flagExplainBudget)
	}
}

// stopAfter ends a capture d after it was armed (0: never), so that
// --duration counts capture time, not set-up time.
func stopAfter(d time.Duration, cancel context.CancelFunc) {
	if d > 0 {
		time.AfterFunc(d, cancel)
	}
}

// counters reads the TCP counters of the watched namespace.
func (s *session) counters() (proc.Counters, error) {
	return counters.ReadFrom(s.target.Counters(s.fs))
}

// metricsSink counts each reset in the metrics.
type metricsSink struct{ m *metrics.Registry }

func (ms metricsSink) Handle(e *pipeline.Event) error {
	if e.Reported() {
		ms.m.Observe(&e.Event, &e.Verdict)
	}
	return nil
}

func (metricsSink) Flush() error { return nil }

// sinkFunc is a sink that buffers nothing.
type sinkFunc func(*pipeline.Event) error

func (f sinkFunc) Handle(e *pipeline.Event) error { return f(e) }
func (sinkFunc) Flush() error                     { return nil }
