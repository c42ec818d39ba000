package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/namespaces"
	"github.com/rstwatch/rstwatch/proc/netns"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// FlushEvery bounds how long a handled event may wait in a sink's buffer:
// sinks are flushed whenever a source has nothing more buffered (before it
// may block), and at least this often while anything is unflushed, so a
// reset is shown and written even when the batch it came in ends with a
// packet that is not reported, or the source blocks.
const FlushEvery = 100 * time.Millisecond

// Event is one decoded, deduplicated and explained segment: a reset, or a
// SYN (or, with Config.Handshakes, a SYN-ACK) passed to the capture for
// attribution (see IsReset).
type Event struct {
	sniff.Event
	// Verdict is the reset's (or other failure's, Verdict.Kind)
	// explanation; zero for a SYN kept for attribution.
	Verdict explain.Verdict
	// Netns is the network namespace it was captured in; nil for this
	// process's own namespace, or for a capture file.
	Netns *namespaces.Target
}

// IsReset reports whether the segment is a reset. Other segments are SYNs
// that a capture passes for attribution: a capture file keeps them, lines
// and reports do not; or other failed connections (see Reported).
func (e *Event) IsReset() bool { return e.Flags.Has(sniff.FlagRST) && !e.ICMP.Valid() }

// Reported reports whether the event is a failure to report: a reset, a
// SYN or SYN-ACK sent again, or an ICMP error (Verdict.Kind says which).
// The other events handed to sinks are SYNs kept for attribution.
func (e *Event) Reported() bool { return e.Verdict.Kind != 0 || e.IsReset() }

// A Sink receives every event of a run. Calls to a run's sinks never
// overlap, so a sink needs no lock of its own; e and what it points to are
// valid only during the call.
type Sink interface {
	// Handle receives one event.
	Handle(e *Event) error
	// Flush writes out what Handle buffered. It is called when the
	// capture goes idle and at most FlushEvery after an event.
	Flush() error
}

// A TimedSink is a Sink whose Flush need not run each time the capture
// goes idle: FlushEvery after an event is soon enough, and Run calls it
// then (and at the end). A capture file is one: as tcpdump -w, it writes
// when its buffer is full, and at least every FlushEvery, instead of once
// per ring block. A write(2) per ring block cost more than the writing:
// each wakes the Go runtime's monitor thread, which then polls for a
// millisecond.
type TimedSink interface {
	Sink
	// FlushOnTimer marks the sink; it is never called.
	FlushOnTimer()
}

// Config configures Open.
type Config struct {
	// Capture is the live capture's configuration (interfaces, filter).
	// Its NetNS is set by Open from Netns.
	Capture sniff.Config
	// Read, if set, is a capture file to read instead of capturing ("-":
	// Stdin). Its resets are explained from the packets and the
	// handshakes the file holds.
	Read  string
	Stdin io.Reader
	// Netns is the network namespace to watch; nil means this process's.
	Netns *namespaces.Target
	// AllNetns watches every network namespace on the host, including
	// ones that appear later (namespaces.Discover).
	AllNetns bool
	// Proc is the host's /proc, for attribution and namespace discovery.
	Proc proc.FS
	// Explain ties resets to sockets and processes; without it causes
	// come from the packets alone and no SYNs are captured.
	Explain bool
	// Handshakes also captures (or reads from the file) SYN-ACKs, and SYNs
	// even without attribution, and hands both to the sinks: diagnose
	// tells from them who connected and who accepted, and how much each
	// end had sent.
	Handshakes bool
	// Budget is explain.Config.Budget.
	Budget int
	// Notify, if set, receives informational lines (a namespace skipped
	// or added, attribution unavailable). Its string arguments may hold
	// outside bytes (namespace names): the caller escapes them.
	Notify func(format string, args ...any)
}

// Stats sums the counters of a run.
type Stats struct {
	sniff.Stats
	// Sampled counts resets and SYNs explained from the packet alone
	// because attribution was over its budget.
	Sampled uint64
	// Failed counts the failures handled that are not resets
	// (unanswered handshakes, ICMP errors); Run's count includes them.
	Failed uint64
	// Err is set when the kernel's counters could not be read.
	Err error
}

// source is a live capture or a capture file.
type source interface {
	Next(*sniff.Event) error
	Buffered() int
}

// Pipeline is what a capturing command has open: the live captures (one
// per watched network namespace) or a capture file.
type Pipeline struct {
	cfg     Config
	xcfg    explain.Config
	file    *File // -r, or nil
	closers []func()

	mu       sync.Mutex // guards captures and the sinks' calls across capture goroutines
	captures []*capture
	failed   atomic.Uint64 // Stats.Failed
}

// capture is the live capture of one network namespace.
type capture struct {
	ns        *namespaces.Target // nil: this process's namespace
	live      *sniff.Sniffer
	explainer *explain.Explainer // nil without attribution
	drops     atomic.Uint64      // kernel drops, read at an idle moment at most statsEvery ago
	statsAt   time.Time          // when drops was read; only the capture's goroutine uses it
	closers   []func()
}

// statsEvery is how often an idle capture reads its kernel counters: in a
// storm it goes idle once per ring block, hundreds of times a second, and
// each read is a getsockopt(2) that also runs the pending network softirqs
// on the sniffer's account.
const statsEvery = FlushEvery

func (c *capture) close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	c.closers = nil
}

// Open opens the capture file or the live captures that cfg asks for. ctx
// bounds the explainers' refresh loops and a blocking open of a FIFO. On
// error, what was opened is closed again. Errors of a live capture match
// os.ErrPermission (missing CAP_NET_RAW, or CAP_SYS_ADMIN for another
// namespace: then they wrap a *netns.EnterError) or are a
// *sniff.UnknownInterfaceError.
func Open(ctx context.Context, cfg *Config) (_ *Pipeline, err error) {
	p := &Pipeline{cfg: *cfg}
	if p.cfg.Notify == nil {
		p.cfg.Notify = func(string, ...any) {}
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if cfg.Handshakes {
		p.cfg.Capture.Filter.SYN, p.cfg.Capture.Filter.SYNACK = true, true
	}
	if cfg.Read != "" {
		f, err := OpenFile(ctx, cfg.Read, p.cfg.Capture.Filter, cfg.Stdin)
		if err != nil {
			return nil, err
		}
		p.file = f
		p.closers = append(p.closers, func() { f.Close() })
		return p, nil
	}
	// A named interface that goes away and comes back is worth a line;
	// the last one going away ends the capture (an error from Next).
	p.cfg.Capture.Notify = func(msg string) { p.cfg.Notify("%s", msg) }
	p.xcfg = explain.Config{Budget: cfg.Budget, Proc: cfg.Proc}
	if cfg.Explain {
		// One owner index for every namespace: processes are the host's.
		p.xcfg.Owners = explain.NewOwners(cfg.Proc, 0)
		// Outgoing SYNs let the explainer see a refused client's socket
		// while it exists.
		p.cfg.Capture.Filter.SYN = true
	}
	// SYNs and SYN-ACKs sent again, FINs and ICMP errors: the failed
	// connections that no reset tells of, and data after close.
	p.cfg.Capture.Filter.Failures = true
	targets := []*namespaces.Target{cfg.Netns}
	if cfg.AllNetns {
		targets = namespaces.Discover(cfg.Proc, map[uint64]bool{})
	}
	for _, t := range targets {
		cp, err := p.openCapture(ctx, t)
		if err != nil {
			// A namespace can vanish between listing and opening; a
			// missing privilege is the same for every one.
			if !cfg.AllNetns || errors.Is(err, os.ErrPermission) {
				return nil, err
			}
			p.cfg.Notify("skipping network namespace %s: %v", t.Name, err)
			continue
		}
		p.captures = append(p.captures, cp)
	}
	if len(p.captures) == 0 {
		return nil, errors.New("no network namespace could be watched")
	}
	return p, nil
}

// openCapture opens the capture (and the explainer) of namespace t.
func (p *Pipeline) openCapture(ctx context.Context, t *namespaces.Target) (_ *capture, err error) {
	cp := &capture{ns: t}
	defer func() {
		if err != nil {
			cp.close()
		}
	}()
	cfg := p.cfg.Capture
	xcfg := p.xcfg
	if t != nil {
		// Enter once first: a namespace that cannot be entered is one
		// error, not a note about attribution and then an error.
		if err := netns.Do(t.Path, func() error { return nil }); err != nil {
			return nil, err
		}
		cfg.NetNS, xcfg.NetNS = t.Path, t.Path
		xcfg.Counters = t.Counters(p.cfg.Proc)
	}
	if p.cfg.Explain {
		x, err := explain.Open(&xcfg)
		if err != nil {
			p.cfg.Notify("attribution unavailable, causes come from the packets alone: %v", err)
		} else {
			cp.explainer = x
			cp.closers = append(cp.closers, func() { x.Close() })
			xctx, cancel := context.WithCancel(ctx)
			cp.closers = append(cp.closers, cancel)
			go x.Run(xctx)
		}
	}
	if cp.explainer == nil && !p.cfg.Handshakes {
		// Without attribution there is no use for SYNs but to see them
		// sent again (Filter.Failures).
		cfg.Filter.SYN = false
	}
	if cp.live, err = sniff.Open(&cfg); err != nil {
		return nil, err
	}
	cp.closers = append(cp.closers, func() { cp.live.Close() })
	return cp, nil
}

// File returns the capture file being read, or nil for a live capture.
func (p *Pipeline) File() *File { return p.file }

// Explainer returns the explainer of the first (with --netns, the only)
// capture, or nil when resets are not attributed.
func (p *Pipeline) Explainer() *explain.Explainer {
	if len(p.captures) == 0 {
		return nil
	}
	return p.captures[0].explainer
}

// Interfaces returns the interfaces of the first capture.
func (p *Pipeline) Interfaces() []sniff.Interface {
	if len(p.captures) == 0 {
		return nil
	}
	return p.captures[0].live.Interfaces()
}

// Namespaces returns the namespaces watched (a nil entry is this
// process's own).
func (p *Pipeline) Namespaces() []*namespaces.Target {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*namespaces.Target, len(p.captures))
	for i, cp := range p.captures {
		out[i] = cp.ns
	}
	return out
}

// Drops sums the kernel drops of every capture as of an idle moment at
// most 100 ms old (while captures run); it may be called from any
// goroutine (the metrics server's).
func (p *Pipeline) Drops() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n uint64
	for _, cp := range p.captures {
		n += cp.drops.Load()
	}
	return n
}

// Stats returns the captures' kernel counters and how many resets were
// explained from the packet alone. Call it when Run has returned.
func (p *Pipeline) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	var (
		st   Stats
		errs []error
	)
	for _, cp := range p.captures {
		one, err := cp.live.Stats()
		if err != nil {
			errs = append(errs, err)
		}
		st.Packets += one.Packets
		st.Drops += one.Drops
		if cp.explainer != nil {
			st.Sampled += cp.explainer.Sampled()
		}
	}
	st.Err = errors.Join(errs...)
	st.Failed = p.failed.Load()
	return st
}

// Close releases what Open opened, last first.
func (p *Pipeline) Close() {
	p.mu.Lock()
	for _, cp := range p.captures {
		cp.close()
	}
	p.mu.Unlock()
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// Run reads segments until ctx ends, the file is exhausted or limit
// failures (resets, unanswered handshakes, ICMP errors) were handled (0: no
// limit), and hands each event to every sink in order.
// Resets are explained first: by the kernel's state when attributed, by
// the packet (and, offline, the file's handshakes) otherwise; SYNs feed the
// explainer. Run returns the number of resets (Stats.Failed counts the
// other failures). Sinks are flushed once more
// before it returns, whatever ended it.
func (p *Pipeline) Run(ctx context.Context, limit int, sinks ...Sink) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := newRun(ctx, p, limit, sinks, cancel)
	defer func() {
		p.mu.Lock()
		r.flushLocked()
		p.mu.Unlock()
	}()
	defer r.timer.Stop()
	var wg sync.WaitGroup
	if p.file != nil {
		err := r.loop(ctx, p.file, nil)
		cancel()
		wg.Wait()
		return r.n - int(p.failed.Load()), r.firstErr(err)
	}
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
			if err := r.loop(ctx, cp.live, cp); err != nil {
				r.fail(err)
			}
		}()
	}
	p.mu.Lock()
	for _, cp := range p.captures {
		start(cp)
	}
	p.mu.Unlock()
	if p.cfg.AllNetns {
		// Pick up namespaces created after the start.
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(discoverEvery)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					p.discover(ctx, start)
				}
			}
		}()
	}
	// A live capture's loop ends only with ctx or with an error, which
	// ends ctx: the flusher and the discoverer end with them.
	wg.Wait()
	return r.n - int(p.failed.Load()), r.firstErr(nil)
}

// discoverEvery is how often --all-netns looks for new namespaces.
const discoverEvery = 2 * time.Second

// discover opens captures for namespaces that appeared since the last look.
func (p *Pipeline) discover(ctx context.Context, start func(*capture)) {
	p.mu.Lock()
	known := map[uint64]bool{}
	for _, cp := range p.captures {
		if cp.ns != nil {
			known[cp.ns.Inode] = true
		}
	}
	p.mu.Unlock()
	for _, t := range namespaces.Discover(p.cfg.Proc, known) {
		cp, err := p.openCapture(ctx, t)
		if err != nil {
			continue // gone again, or not enterable: try at the next look
		}
		p.mu.Lock()
		if ctx.Err() != nil {
			p.mu.Unlock()
			cp.close()
			return
		}
		p.captures = append(p.captures, cp)
		p.cfg.Notify("now also watching network namespace %s", t.Name)
		start(cp)
		p.mu.Unlock()
	}
}

// run is the state shared by the capture goroutines of one Run.
type run struct {
	p      *Pipeline
	limit  int
	sinks  []Sink
	cancel context.CancelFunc

	// Guarded by p.mu:
	n         int   // resets handled
	err       error // the first error
	unflushed bool  // an event was handled since the last flush
	// timer flushes FlushEvery after the first event that a flush has
	// not yet covered (armed by handle).
	timer *time.Timer
}

// newRun prepares a run of p's sources into sinks; cancel ends ctx.
func newRun(ctx context.Context, p *Pipeline, limit int, sinks []Sink, cancel context.CancelFunc) *run {
	r := &run{p: p, limit: limit, sinks: sinks, cancel: cancel}
	// The flush timer runs only while something is unflushed: an idle
	// capture wakes nothing up.
	r.timer = time.AfterFunc(time.Hour, func() { r.timerFlush(ctx) })
	r.timer.Stop()
	return r
}

func (r *run) fail(err error) {
	r.p.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.p.mu.Unlock()
	r.cancel()
}

func (r *run) firstErr(err error) error {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	return err
}

// timerFlush flushes the sinks when the flush timer fires: FlushEvery
// after an event that no flush covered since, even while every source
// blocks or a storm keeps the batch from ever running dry.
func (r *run) timerFlush(ctx context.Context) {
	r.p.mu.Lock()
	var err error
	if r.unflushed && ctx.Err() == nil {
		err = r.flushLocked()
	}
	r.p.mu.Unlock()
	if err != nil {
		r.fail(err)
	}
}

// flushLocked flushes every sink; the caller holds p.mu.
func (r *run) flushLocked() error {
	r.unflushed = false
	var first error
	for _, s := range r.sinks {
		if err := s.Flush(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// idle runs before a source may block: flush what is buffered (a
// TimedSink waits for the timer, which is armed) and, for a live capture,
// refresh its drop count.
func (r *run) idle(cp *capture) error {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	if cp != nil {
		if now := time.Now(); now.Sub(cp.statsAt) >= statsEvery {
			cp.statsAt = now
			if st, err := cp.live.Stats(); err == nil {
				cp.drops.Store(st.Drops)
			}
		}
	}
	if !r.unflushed {
		return nil
	}
	timed := false
	var first error
	for _, s := range r.sinks {
		if _, ok := s.(TimedSink); ok {
			timed = true
			continue
		}
		if err := s.Flush(); err != nil && first == nil {
			first = err
		}
	}
	// With a TimedSink still holding events, the timer stays armed.
	r.unflushed = timed
	return first
}

// loop reads one source until ctx ends or it is exhausted.
func (r *run) loop(ctx context.Context, src source, cp *capture) error {
	var (
		ev Event
		x  *explain.Explainer
		// t remembers handshakes and FINs: SYNs sent again and data
		// after close (explain.Failure, explain.AfterClose).
		t = new(explain.Tracker)
	)
	if cp != nil {
		ev.Netns, x = cp.ns, cp.explainer
	}
	// A live capture hands out the segments of a ring block without
	// blocking (TryNext): the sinks' lock is then taken once per block, not
	// once per packet, and let go before the capture may block, so that
	// the flush timer and the other captures wait at most one block.
	try, _ := src.(interface{ TryNext(*sniff.Event) bool })
	locked := false
	defer func() {
		if locked {
			r.p.mu.Unlock()
		}
	}()
	for ctx.Err() == nil {
		if try == nil || !try.TryNext(&ev.Event) {
			if locked {
				r.p.mu.Unlock()
				locked = false
			}
			if src.Buffered() == 0 {
				if err := r.idle(cp); err != nil {
					return err
				}
			}
			if err := src.Next(&ev.Event); err != nil {
				switch {
				case errors.Is(err, io.EOF):
					return nil
				case ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded):
					return nil
				}
				return err
			}
		}
		if !ev.IsReset() {
			if x != nil {
				x.Observe(&ev.Event)
			}
			if explain.Failure(t, &ev.Event, &ev.Verdict) {
				switch {
				case r.p.file != nil:
					ev.Verdict.Offline = true
				case x != nil:
					x.ExplainFailure(&ev.Event, &ev.Verdict)
				}
			} else if !r.handshake(&ev) {
				continue // a FIN, an ICMP error or a SYN-ACK kept for the tracker only
			}
		} else {
			switch {
			case r.p.file != nil:
				ev.Verdict = explain.Verdict{Cause: explain.FileCause(&ev.Segment, r.p.file.HandshakeSeen(&ev.Event)), Offline: true}
			case x != nil:
				x.Explain(&ev.Event, &ev.Verdict)
			default:
				ev.Verdict = explain.Verdict{Cause: explain.WireCause(&ev.Segment)}
			}
			ev.Verdict.Kind = explain.KindReset
			explain.AfterClose(t, x, &ev.Event, &ev.Verdict)
		}
		if !locked {
			r.p.mu.Lock()
			locked = true
		}
		if err := r.handleLocked(&ev); err != nil {
			return err
		}
		if try == nil {
			r.p.mu.Unlock()
			locked = false
		}
	}
	return nil
}

// handshake reports whether ev, a segment that reports no failure, goes
// to the sinks: a SYN does (for attribution and capture files), and so
// does a SYN-ACK with Config.Handshakes.
func (r *run) handshake(ev *Event) bool {
	if ev.ICMP.Valid() {
		return false
	}
	switch ev.Flags & (sniff.FlagSYN | sniff.FlagACK | sniff.FlagRST) {
	case sniff.FlagSYN:
		return true
	case sniff.FlagSYN | sniff.FlagACK:
		return r.p.cfg.Handshakes
	}
	return false
}

// handleLocked hands one event to the sinks, counting resets against the
// limit; the caller holds p.mu.
func (r *run) handleLocked(ev *Event) error {
	reset := ev.Reported()
	if reset {
		if r.limit > 0 && r.n >= r.limit {
			r.cancel()
			return nil
		}
		r.n++
		if ev.Verdict.Kind > explain.KindReset {
			r.p.failed.Add(1)
		}
	}
	if !r.unflushed {
		r.unflushed = true
		r.timer.Reset(FlushEvery)
	}
	for _, s := range r.sinks {
		if err := s.Handle(ev); err != nil {
			return err
		}
	}
	if reset && r.limit > 0 && r.n >= r.limit {
		r.cancel()
	}
	return nil
}

// String describes the run's source for error messages.
func (p *Pipeline) String() string {
	if p.file != nil {
		return p.file.Name
	}
	return fmt.Sprintf("%d live capture(s)", len(p.captures))
}
