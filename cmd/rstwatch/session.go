package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/metrics"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/render"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// eventSource is a live capture or a capture file.
type eventSource interface {
	Next(*sniff.Event) error
	Buffered() int
}

// session is what a capturing command (watch, diagnose) has open: the
// captures (one per watched network namespace) or a capture file, the
// capture file being written and the metrics, set up from the shared flags.
// close releases them in reverse order.
type session struct {
	captures []*capture        // live captures; empty offline
	file     *captureFile      // -w, or nil
	metrics  *metrics.Registry // --metrics, or nil
	offline  *fileSource       // -r, or nil
	// stdout is where text goes: io.Discard when -w - owns stdout.
	stdout  io.Writer
	stderr  io.Writer
	closers []func()

	// target is the namespace watched with --netns/--pid (nil: our own,
	// or every one with --all-netns).
	target *nsTarget
	// For --all-netns: what a new capture is opened with.
	allNetns bool
	cfg      sniff.Config
	explain  explain.Config
	fs       proc.FS
	mu       sync.Mutex // guards captures, file, output and counts across capture goroutines
}

// capture is the live capture of one network namespace.
type capture struct {
	ns        *nsTarget // nil: this process's namespace
	live      *sniff.Sniffer
	explainer *explain.Explainer // nil with --no-explain or when attribution is unavailable
	drops     atomic.Uint64      // kernel drops, for the metrics goroutine
	closers   []func()
}

func (c *capture) close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	c.closers = nil
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

	if path := c.String(flagRead); path != "" {
		if len(cfg.Interfaces) > 0 {
			return nil, usagef("-i selects live interfaces; it cannot be used with -r")
		}
		fr, closer, err := openReadFile(path, cfg.Filter, os.Stdin)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { closer.Close() })
		s.offline = fr
		// Reading a file needs no privilege at all.
		_ = dropCapabilities()
		return s, nil
	}

	if c.Bool(flagAllNetns) && (c.IsSet(flagNetns) || c.IsSet(flagPid)) {
		return nil, usagef("--%s watches every namespace: it cannot be used with --%s or --%s", flagAllNetns, flagNetns, flagPid)
	}
	target, err := resolveNamespace(c)
	if err != nil {
		return nil, err
	}
	s.target, s.allNetns = target, c.Bool(flagAllNetns)
	if s.fs, err = proc.NewFS(proc.DefaultRoot); err != nil {
		return nil, err
	}
	if b := c.Int(flagExplainBudget); b < -1 {
		return nil, usagef("invalid --%s %d: want -1 (no limit) or more", flagExplainBudget, b)
	}
	s.cfg = *cfg
	s.explain = explain.Config{Budget: c.Int(flagExplainBudget), Proc: s.fs}
	if c.Bool(flagNoExplain) {
		s.explain.Budget = 0
		s.explain.Proc = proc.FS{}
	} else {
		// One owner index for every namespace: processes are the host's.
		s.explain.Owners = explain.NewOwners(s.fs, 0)
		// Outgoing SYNs let the explainer see a refused client's socket
		// while it exists.
		s.cfg.Filter.SYN = true
	}
	explainOn := !c.Bool(flagNoExplain)

	if addr := c.String(flagMetrics); addr != "" {
		// The kernel counters served are the watched namespace's.
		mfs := s.fs
		if target != nil && target.pid > 0 {
			mfs = s.fs.NetOf(target.pid)
		}
		s.metrics = metrics.New(mfs)
		stop, err := startMetrics(ctx, addr, s.metrics)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, stop)
	}

	targets := []*nsTarget{target}
	if s.allNetns {
		targets = discoverNamespaces(s.knownNamespaces())
	}
	for _, t := range targets {
		cp, err := s.openCapture(ctx, t, explainOn)
		if err != nil {
			if !s.allNetns {
				return nil, err
			}
			// A namespace can vanish between listing and opening.
			fmt.Fprintf(s.stderr, "skipping network namespace %s: %v\n", t.name, err)
			continue
		}
		s.captures = append(s.captures, cp)
	}
	if len(s.captures) == 0 {
		return nil, fmt.Errorf("no network namespace could be watched")
	}
	if s.metrics != nil {
		s.metrics.SetCaptureDrops(s.drops)
	}
	// Everything is open: keep only what the run still needs. Entering
	// another namespace again (its addresses and interface names are
	// re-read; --all-netns opens new captures) needs CAP_SYS_ADMIN.
	if err := dropCapabilities(runtimeCapabilities(s.allNetns || s.target != nil)...); err != nil {
		fmt.Fprintf(s.stderr, "could not drop capabilities: %v\n", err) // not fatal
	}
	fmt.Fprintln(c.App.ErrWriter, s.listeningLine())
	if x := s.captures[0].explainer; x != nil {
		// The explainer's first owner scan is done: say once if it could
		// not read some processes.
		if note := ownersNote(x.Owners().Stats(), effectiveCapabilities()); note != "" {
			fmt.Fprintln(s.stderr, note)
		}
	}
	return s, nil
}

// knownNamespaces returns the inodes of the namespaces already watched.
func (s *session) knownNamespaces() map[uint64]bool {
	known := map[uint64]bool{}
	for _, cp := range s.captures {
		if cp.ns != nil {
			known[cp.ns.inode] = true
		}
	}
	return known
}

// openCapture opens the capture (and the explainer) of namespace t.
func (s *session) openCapture(ctx context.Context, t *nsTarget, explainOn bool) (_ *capture, err error) {
	cp := &capture{ns: t}
	defer func() {
		if err != nil {
			cp.close()
		}
	}()
	cfg := s.cfg
	ecfg := s.explain
	if t != nil {
		cfg.NetNS, ecfg.NetNS = t.path, t.path
		ecfg.Counters = t.counters(s.fs)
	}
	if explainOn {
		cp.explainer = openExplainer(s.stderr, &ecfg)
	}
	if cp.explainer == nil {
		// Without attribution there is no use for SYNs.
		cfg.Filter.SYN = false
	} else {
		cp.closers = append(cp.closers, func() { cp.explainer.Close() })
		xctx, cancel := context.WithCancel(ctx)
		cp.closers = append(cp.closers, cancel)
		go cp.explainer.Run(xctx)
	}
	if cp.live, err = openCapture(&cfg); err != nil {
		return nil, err
	}
	cp.closers = append(cp.closers, func() { cp.live.Close() })
	return cp, nil
}

// listeningLine is what rstwatch says on stderr once the capture is armed.
func (s *session) listeningLine() string {
	if s.allNetns {
		names := make([]string, len(s.captures))
		for i, cp := range s.captures {
			names[i] = safe.Text(cp.ns.name)
		}
		return fmt.Sprintf("listening on all interfaces of %s (%s; new ones as they appear), capturing TCP resets",
			render.Plural(len(s.captures), "network namespace"), strings.Join(names, ", "))
	}
	cp := s.captures[0]
	line := listeningLine(&s.cfg, cp.live.Interfaces())
	if cp.ns != nil {
		line = strings.Replace(line, ", capturing", fmt.Sprintf(" in network namespace %s, capturing", safe.Text(cp.ns.name)), 1)
	}
	return line
}

// drops sums the kernel drops of every capture, for the metrics.
func (s *session) drops() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, cp := range s.captures {
		n += cp.drops.Load()
	}
	return n
}

// close releases what openSession opened, last first.
func (s *session) close() {
	s.mu.Lock()
	for _, cp := range s.captures {
		cp.close()
	}
	s.mu.Unlock()
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

// resetFunc receives each reset with its verdict and the namespace it was
// seen in (nil: this process's own).
type resetFunc func(*sniff.Event, *explain.Verdict, *nsTarget) error

// run reads segments until ctx ends, the source is exhausted or limit
// resets were handled (0: no limit). Each reset is explained, counted in
// the metrics, handed to onReset and written to the capture file; SYNs
// kept for attribution only feed the explainer and the file. idle runs
// whenever a source has nothing more buffered, before it may block: the
// moment to flush output. Calls to onReset and idle never overlap. run
// returns the number of resets.
func (s *session) run(ctx context.Context, limit int, onReset resetFunc, idle func() error) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &runState{s: s, limit: limit, onReset: onReset, idle: idle, cancel: cancel}
	if s.offline != nil {
		err := r.loop(ctx, s.offline, nil, nil)
		return r.n, err
	}
	var wg sync.WaitGroup
	start := func(cp *capture) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Ending ctx (Ctrl-C, --duration, -c reached by any capture)
			// unblocks Next through a deadline in the past. It must be
			// this ctx, the one loop checks: AfterFunc runs only once it
			// is done, so a deadline error always finds ctx.Err() set.
			stop := context.AfterFunc(ctx, func() { _ = cp.live.SetReadDeadline(time.Unix(1, 0)) })
			defer stop()
			if err := r.loop(ctx, cp.live, cp.explainer, cp); err != nil {
				r.fail(err)
			}
		}()
	}
	s.mu.Lock()
	for _, cp := range s.captures {
		start(cp)
	}
	s.mu.Unlock()
	if s.allNetns {
		// Pick up namespaces created after the start.
		wg.Add(1)
		go func() {
			defer wg.Done()
			every(ctx, 2*time.Second, func() { s.discover(ctx, start) })
		}()
	}
	wg.Wait()
	return r.n, r.err
}

// discover opens captures for namespaces that appeared since the last look.
func (s *session) discover(ctx context.Context, start func(*capture)) {
	s.mu.Lock()
	known := s.knownNamespaces()
	s.mu.Unlock()
	for _, t := range discoverNamespaces(known) {
		cp, err := s.openCapture(ctx, t, s.explain.Proc != proc.FS{})
		if err != nil {
			continue // gone again, or not enterable: try at the next look
		}
		s.mu.Lock()
		if ctx.Err() != nil {
			s.mu.Unlock()
			cp.close()
			return
		}
		s.captures = append(s.captures, cp)
		fmt.Fprintf(s.stderr, "now also watching network namespace %s\n", safe.Text(t.name))
		start(cp)
		s.mu.Unlock()
	}
}

// runState is shared by the capture goroutines of one run.
type runState struct {
	s       *session
	limit   int
	onReset resetFunc
	idle    func() error
	cancel  context.CancelFunc
	n       int   // resets handled, guarded by s.mu
	err     error // the first error, guarded by s.mu
}

func (r *runState) fail(err error) {
	r.s.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.s.mu.Unlock()
	r.cancel()
}

// loop reads one source until ctx ends or it is exhausted.
func (r *runState) loop(ctx context.Context, src eventSource, x *explain.Explainer, cp *capture) error {
	s := r.s
	var (
		ev sniff.Event
		v  explain.Verdict
		ns *nsTarget
	)
	if cp != nil {
		ns = cp.ns
	}
	for ctx.Err() == nil {
		if err := src.Next(&ev); err != nil {
			switch {
			case errors.Is(err, io.EOF):
				return nil
			case ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded):
				return nil
			}
			return err
		}
		if !ev.Flags.Has(sniff.FlagRST) {
			// A SYN passed for attribution: not reported, but kept in
			// the capture file, marked.
			if x != nil {
				x.Observe(&ev)
			}
			if s.file != nil {
				s.mu.Lock()
				err := s.file.write(&ev, synComment)
				s.mu.Unlock()
				if err != nil {
					return err
				}
			}
			continue
		}
		if s.offline != nil {
			v = explain.Verdict{Cause: explain.FileCause(&ev.Segment, s.offline.HandshakeSeen(&ev)), Offline: true}
		} else {
			explainReset(x, &ev, &v)
		}
		s.mu.Lock()
		err := r.handle(&ev, &v, ns, src.Buffered() == 0, cp)
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// handle reports one reset; the caller holds s.mu.
func (r *runState) handle(ev *sniff.Event, v *explain.Verdict, ns *nsTarget, idle bool, cp *capture) error {
	s := r.s
	if r.limit > 0 && r.n >= r.limit {
		r.cancel()
		return nil
	}
	r.n++
	if s.metrics != nil {
		s.metrics.Observe(ev, v)
	}
	if err := r.onReset(ev, v, ns); err != nil {
		return err
	}
	if s.file != nil {
		if err := s.file.write(ev, verdictComment(v)); err != nil {
			return err
		}
	}
	if idle {
		if err := s.idleLocked(r.idle, cp); err != nil {
			return err
		}
	}
	if r.limit > 0 && r.n >= r.limit {
		r.cancel()
	}
	return nil
}

// idleLocked flushes the capture file, refreshes the drop count for the
// metrics and runs the caller's idle function; the caller holds s.mu.
func (s *session) idleLocked(fn func() error, cp *capture) error {
	if s.file != nil {
		if err := s.file.flush(); err != nil {
			return err
		}
	}
	if s.metrics != nil && cp != nil {
		if st, err := cp.live.Stats(); err == nil {
			cp.drops.Store(st.Drops)
		}
	}
	if fn != nil {
		return fn()
	}
	return nil
}

// reportCapture prints the closing summary, as tcpdump does, summed over
// the captures, and how many resets attribution left to the packet alone.
func (s *session) reportCapture(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		st      sniff.Stats
		sampled uint64
		errs    []error
	)
	for _, cp := range s.captures {
		one, err := cp.live.Stats()
		if err != nil {
			errs = append(errs, err)
		}
		st.Packets += one.Packets
		st.Drops += one.Drops
		if cp.explainer != nil {
			sampled += cp.explainer.Sampled()
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(s.stderr, "%d resets captured (kernel statistics unavailable: %v)\n", n, errors.Join(errs...))
	} else {
		fmt.Fprintf(s.stderr, "%d resets captured, %d dropped by kernel\n", n, st.Drops)
		fmt.Fprintf(s.stderr, "%d packets received by filter\n", st.Packets)
	}
	if sampled > 0 {
		fmt.Fprintf(s.stderr, "%d resets or SYNs explained from the packet alone: attribution was over its budget (--%s)\n", sampled, flagExplainBudget)
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

// explainReset fills v for a live reset: from the kernel's state when x is
// set, else from the packet alone.
func explainReset(x *explain.Explainer, e *sniff.Event, v *explain.Verdict) {
	if x != nil {
		x.Explain(e, v)
		return
	}
	*v = explain.Verdict{Cause: explain.WireCause(&e.Segment)}
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

// counters reads the TCP counters of the watched namespace.
func (s *session) counters() (proc.Counters, error) {
	return counters.ReadFrom(s.target.counters(s.fs))
}
