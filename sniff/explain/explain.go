package explain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/netns"
	"github.com/rstwatch/rstwatch/sniff"
)

// Defaults for Config.
const (
	DefaultRefresh = 250 * time.Millisecond
	localsRefresh  = 2 * time.Second
)

// Config configures Open. A nil *Config means defaults.
type Config struct {
	// NetNS is the network namespace whose sockets explain the resets
	// (sock_diag sockets and local addresses come from it); empty means
	// the caller's.
	NetNS string
	// Proc is the /proc of the host, for socket owners; the zero FS means
	// /proc.
	Proc proc.FS
	// Counters reads the namespace's TCP counters (TcpExt.ListenOverflows
	// tells an overflow from a stale reset); nil means Proc.Counters,
	// which follows this process's namespace.
	Counters func() (proc.Counters, error)
	// Owners, if set, is a shared index of socket owners: one scan of the
	// host's /proc serves the explainers of several namespaces.
	Owners *proc.Owners
	// Refresh is how often the socket table is re-read (default 250ms):
	// a connection that lived longer than that is attributed even after
	// the reset closed it.
	Refresh time.Duration
	// Budget is how many resets (and outgoing SYNs) a second are tied to
	// sockets with sock_diag lookups (default DefaultBudget; negative: no
	// limit). Over it, Explain gives the verdict from the packet alone and
	// sets Verdict.Sampled, so a reset storm is captured in full while
	// attribution degrades to sampling.
	Budget int

	// Dial, if set, opens the kernel's socket tables instead of two
	// sock_diag sockets in NetNS: tests give fixtures, so the decision
	// tree is tested without privileges. It is called twice, for the
	// periodic dumps and for the lookups on the capture path.
	Dial func() (Kernel, error)
	// Locals, if set, lists the namespace's addresses instead of its
	// interfaces (tests).
	Locals func() ([]netip.Addr, error)
}

// Kernel is what an Explainer asks about sockets: a sock_diag socket
// (*proc.Diag) in the watched namespace, or a fixture.
type Kernel interface {
	proc.Source
	// Lookup asks for the socket with exactly this 4-tuple.
	Lookup(local, remote netip.AddrPort) (proc.Socket, bool, error)
	Close() error
}

var _ Kernel = (*proc.Diag)(nil)

// Explainer ties resets to the kernel's socket state. Explain and Observe
// must be called from one goroutine (the capture's); Run refreshes the
// state from another.
type Explainer struct {
	cfg    Config
	table  *proc.Table
	owners *proc.Owners
	dump   Kernel // used by the table's periodic Refresh
	lookup Kernel // used on the capture path, never blocked by a dump
	locals atomic.Pointer[addrSet]
	// recent caches IsLocal for the capture path (isLocal), which asks
	// twice a packet about the same few addresses.
	recent  localCache
	refresh sync.Mutex

	overflows    uint64 // TcpExt.ListenOverflows at the last look
	haveCounters bool
	// budget limits sock_diag lookups on the capture path (budget.go).
	budget budget

	listenCheck listenCheck
	listenBuf   []proc.Socket // reused by listeningNow's dumps

	// kick asks Run for an early look for owners: a SYN's socket was
	// found but not its owner, whose fd can be found only while the
	// socket exists.
	kick chan struct{}

	// What Run's periodic refresh last did (only Run touches these).
	lastFull  time.Time
	fullCost  time.Duration
	churn     uint64 // churnSum at the last full refresh
	haveChurn bool
	lastQuiet time.Time // when the counters last said nothing changed
}

// Open dials sock_diag in the namespace, builds the owner index and takes
// the first snapshot of the socket table.
func Open(cfg *Config) (*Explainer, error) {
	x := &Explainer{kick: make(chan struct{}, 1)}
	if cfg != nil {
		x.cfg = *cfg
	}
	if x.cfg.Refresh <= 0 {
		x.cfg.Refresh = DefaultRefresh
	}
	if x.cfg.Budget == 0 {
		x.cfg.Budget = DefaultBudget
	}
	x.budget = newBudget(x.cfg.Budget)
	if x.cfg.Proc == (proc.FS{}) {
		fs, err := proc.NewFS(proc.DefaultRoot)
		if err != nil {
			return nil, err
		}
		x.cfg.Proc = fs
	}
	if x.cfg.Counters == nil {
		x.cfg.Counters = x.cfg.Proc.Counters
	}
	dial := x.cfg.Dial
	if dial == nil {
		dial = func() (Kernel, error) {
			d, err := proc.DialDiag()
			if err != nil {
				return nil, err // not a nil *Diag in a non-nil Kernel
			}
			return d, nil
		}
	}
	err := netns.Do(x.cfg.NetNS, func() error {
		var err error
		if x.dump, err = dial(); err != nil {
			return err
		}
		x.lookup, err = dial()
		return err
	})
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	// Re-read fd directories at most twice a second after a miss: a
	// refused client's fd is open only until it sees the reset.
	x.owners = x.cfg.Owners
	if x.owners == nil {
		x.owners = NewOwners(x.cfg.Proc, x.cfg.Refresh)
	}
	x.table = proc.NewTable(x.dump, x.owners, &proc.TableConfig{Lookup: x.lookup})
	if err := x.refreshLocals(); err != nil {
		x.Close()
		return nil, err
	}
	sum, known := x.churnNow()
	if err := x.refreshAll(time.Now(), sum, known); err != nil && !errors.Is(err, proc.ErrDumpInterrupted) {
		x.Close()
		return nil, err
	}
	if c, err := x.cfg.Counters(); err == nil {
		x.overflows, x.haveCounters = c["TcpExt.ListenOverflows"], true
	}
	return x, nil
}

// NewOwners returns the owner index an Explainer keeps, for sharing
// through Config.Owners. After a miss it re-reads fd directories at most
// every two refreshes: a refused client's fd is open only until it sees the
// reset.
func NewOwners(fs proc.FS, refresh time.Duration) *proc.Owners {
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	return proc.NewOwners(fs, &proc.OwnersConfig{RescanInterval: 2 * refresh})
}

// Close releases the sock_diag sockets (the Kernels).
func (x *Explainer) Close() error {
	var errs []error
	for _, d := range []Kernel{x.dump, x.lookup} {
		if d != nil {
			errs = append(errs, d.Close())
		}
	}
	return errors.Join(errs...)
}

// Table returns the socket table the Explainer keeps.
func (x *Explainer) Table() *proc.Table { return x.table }

// Owners returns the owner index the Explainer keeps.
func (x *Explainer) Owners() *proc.Owners { return x.owners }

// Run refreshes the socket table and the local addresses until ctx ends.
// Refresh errors do not stop it: the next refresh tries again.
//
// Every Refresh interval it re-reads the listeners, but it dumps every
// socket only when the namespace's TCP counters (read at most once a second
// while they do not move) say connections came or went, or at the latest
// after idleFullEvery, and then no more often than
// keeps the dumps under about 1% of a core: with tens of thousands of
// sockets one dump costs tens of milliseconds. Connections that live
// between two dumps are still seen: Observe looks up a new connection's
// socket when its SYN passes, and Explain names the owner of a server's
// listener for the sockets it accepted.
func (x *Explainer) Run(ctx context.Context) {
	tick := time.NewTicker(x.cfg.Refresh)
	defer tick.Stop()
	lastLocals := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-x.kick:
			// Only the owner index: the socket is in the table already.
			x.refresh.Lock()
			_ = x.owners.Refresh()
			x.refresh.Unlock()
		case now := <-tick.C:
			x.tick(now)
			if now.Sub(lastLocals) >= localsRefresh {
				_ = x.refreshLocals()
				lastLocals = now
			}
		}
	}
}

// Pacing of full dumps in Run: while counters change, at least
// busyFullCost times what the last one took apart; while they do not, at
// least idleFullEvery or idleFullCost times that.
const (
	busyFullCost  = 100
	idleFullCost  = 400
	idleFullEvery = 30 * time.Second
	// quietFor is how long counters that did not move are trusted
	// before they are read again.
	quietFor = time.Second
)

// churnCounters change when a TCP socket is created, accepted, leaves
// ESTABLISHED or CLOSE-WAIT, is reset or aborted, or ends its TIME-WAIT:
// when none of them moved, a dump would show the same connections.
var churnCounters = []string{
	"Tcp.ActiveOpens", "Tcp.PassiveOpens", "Tcp.AttemptFails", "Tcp.EstabResets", "Tcp.CurrEstab",
	"TcpExt.TW", "TcpExt.TWRecycled", "TcpExt.TWKilled",
	"TcpExt.TCPAbortOnClose", "TcpExt.TCPAbortOnData", "TcpExt.TCPAbortOnTimeout",
	"TcpExt.TCPAbortOnMemory", "TcpExt.TCPAbortOnLinger", "TcpExt.TCPAbortFailed",
	"TcpExt.ListenOverflows", "TcpExt.ListenDrops",
}

// churnSum folds churnCounters into one number that changes when any of
// them does (multiplying by an odd constant between additions keeps a rise
// in one and a fall in another from cancelling out).
func churnSum(c proc.Counters) uint64 {
	var h uint64
	for _, k := range churnCounters {
		h = h*0x9e3779b97f4a7c15 + c[k]
	}
	return h
}

// tick is Run's periodic refresh: a full one or listeners only.
func (x *Explainer) tick(now time.Time) {
	x.refresh.Lock()
	defer x.refresh.Unlock()
	if now.Sub(x.lastFull) < max(x.cfg.Refresh, busyFullCost*x.fullCost) {
		// Too early for a full dump whatever the counters say.
		_, _ = x.table.RefreshListeners(now)
		return
	}
	idle := now.Sub(x.lastFull) < max(idleFullEvery, idleFullCost*x.fullCost)
	if idle && now.Sub(x.lastQuiet) < quietFor {
		_, _ = x.table.RefreshListeners(now)
		return
	}
	sum, known := x.churnNow()
	if idle && known && x.haveChurn && sum == x.churn {
		x.lastQuiet = now
		_, _ = x.table.RefreshListeners(now)
		return
	}
	_ = x.refreshAll(now, sum, known)
}

// churnNow reads the namespace's churn counters.
func (x *Explainer) churnNow() (uint64, bool) {
	c, err := x.cfg.Counters()
	if err != nil {
		return 0, false
	}
	return churnSum(c), true
}

// refreshAll dumps every socket; the caller holds x.refresh.
func (x *Explainer) refreshAll(now time.Time, churn uint64, known bool) error {
	r, err := x.table.RefreshAll(now)
	x.fullCost, x.lastFull = r.Took, now
	x.churn, x.haveChurn = churn, known
	return err
}

// Refresh takes a new snapshot of the socket table now. Run calls it
// periodically; tests call it to make the state deterministic.
func (x *Explainer) Refresh(now time.Time) {
	x.refresh.Lock()
	defer x.refresh.Unlock()
	sum, known := x.churnNow()
	_ = x.refreshAll(now, sum, known)
}

// refreshLocals lists the namespace's addresses.
func (x *Explainer) refreshLocals() error {
	var m addrSet
	if x.cfg.Locals != nil {
		addrs, err := x.cfg.Locals()
		if err != nil {
			return fmt.Errorf("list local addresses: %w", err)
		}
		for _, a := range addrs {
			m.add(a)
		}
		x.locals.Store(&m)
		return nil
	}
	err := netns.Do(x.cfg.NetNS, func() error {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if p, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(p.IP); ok {
					m.add(ip)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list local addresses: %w", err)
	}
	x.locals.Store(&m)
	return nil
}

// IsLocal reports whether a is an address of the watched namespace.
func (x *Explainer) IsLocal(a netip.Addr) bool {
	a = a.Unmap()
	if addrIsLoopback(a) {
		return true
	}
	m := x.locals.Load()
	return m != nil && m.has(a)
}

// localCache remembers IsLocal's answer for the last few addresses, for
// one set of local addresses.
type localCache struct {
	set  *addrSet
	addr [4]netip.Addr
	is   [4]bool
	next uint8
}

// isLocal is IsLocal for the capture goroutine: in a storm the same
// addresses come again and again, and a hit costs a comparison or two.
func (x *Explainer) isLocal(a netip.Addr) bool {
	m, c := x.locals.Load(), &x.recent
	if c.set != m {
		*c = localCache{set: m}
	}
	for i := range c.addr {
		if c.addr[i] == a {
			return c.is[i]
		}
	}
	is := x.IsLocal(a)
	i := c.next % uint8(len(c.addr))
	c.addr[i], c.is[i] = a, is
	c.next++
	return is
}

// addrSet is a set of unmapped addresses. It is asked twice for every
// packet: a namespace's few addresses are compared in a slice, without
// the hashing of a map; a host with hundreds uses a map.
type addrSet struct {
	list []netip.Addr
	big  map[netip.Addr]struct{}
}

// addrSetList is how many addresses addrSet compares one by one.
const addrSetList = 16

func (m *addrSet) add(a netip.Addr) {
	a = a.Unmap()
	if m.has(a) {
		return
	}
	if m.big == nil && len(m.list) < addrSetList {
		m.list = append(m.list, a)
		return
	}
	if m.big == nil {
		m.big = make(map[netip.Addr]struct{}, 2*addrSetList)
		for _, b := range m.list {
			m.big[b] = struct{}{}
		}
		m.list = nil
	}
	m.big[a] = struct{}{}
}

// has reports whether a, unmapped, is in the set.
func (m *addrSet) has(a netip.Addr) bool {
	if m.big != nil {
		_, ok := m.big[a]
		return ok
	}
	for _, b := range m.list {
		if a == b {
			return true
		}
	}
	return false
}

// Observe looks up the socket behind an outgoing SYN at once: a client
// whose connection is refused lives in SYN-SENT only until the reset
// arrives (KERNEL-NOTES fact 14), so this is the one chance to see it.
func (x *Explainer) Observe(e *sniff.Event) {
	if e.Flags&(sniff.FlagSYN|sniff.FlagACK|sniff.FlagRST) != sniff.FlagSYN || !x.isLocal(e.Src.Addr()) {
		return
	}
	if !x.budget.allow(e.Time) {
		return
	}
	ent, found, err := x.table.Lookup(e.Src, e.Dst)
	if err == nil && found && ent.Inode != 0 && !ent.Owned {
		if _, ok := x.owners.Lookup(ent.Inode); !ok {
			select {
			case x.kick <- struct{}{}:
			default:
			}
		}
	}
}

// Explain fills v with why e, a reset, happened.
func (x *Explainer) Explain(e *sniff.Event, v *Verdict) {
	*v = Verdict{Cause: WireCause(&e.Segment)}
	senderLocal, targetLocal := x.isLocal(e.Src.Addr()), x.isLocal(e.Dst.Addr())
	v.Sender.Local, v.Target.Local = TriOf(senderLocal), TriOf(targetLocal)
	if !senderLocal && !targetLocal {
		return
	}
	if !x.budget.allow(e.Time) {
		v.Sampled = true
		return
	}

	if senderLocal {
		x.explainSender(e, v)
	}
	if targetLocal {
		v.Target.Process = x.socketOwner(e.Dst, e.Src)
		if !v.Target.Process.Owned {
			// A client's reset to a server's socket.
			if l, ok := x.table.Listening(e.Dst); ok {
				inferOwner(&v.Target.Process, l)
			}
		}
	}
}

func (x *Explainer) explainSender(e *sniff.Event, v *Verdict) {
	l, listening := x.table.Listening(e.Src)
	// The snapshot is up to Refresh old: it may predate the listener's
	// close (a stale "listening" turns a refused connect into "rejected")
	// or its bind (a stale "not listening" turns a firewall's reset into
	// "nothing listens"). Ask the kernel now, either way, where the answer
	// decides the cause. A socket's abort does not depend on it: spare the
	// dump (the snapshot's answer stands, and is not marked as checked).
	var checked bool
	if (listening && v.Cause != Abort) || v.Cause == Refused || v.Cause == Stale {
		listening, l, checked = x.listeningNow(e.Src, listening, l)
	}
	v.Sender.Listening = TriOf(listening)
	v.Sender.ListenChecked = checked
	if listening {
		v.Queue, v.Backlog = l.RecvQ, l.SendQ
	} else if last, ok := x.table.LastListener(e.Src); ok {
		v.Sender.LastListener = LastListener{Known: true, PID: last.PID, Comm: last.Comm, UID: last.UID, Until: last.Until}
	}

	switch v.Cause {
	case Refused:
		if listening {
			// A listener would have answered the SYN itself: something
			// else (netfilter, a policy) reset it.
			v.Cause = Rejected
			v.Listener = procOf(l, Recent)
		}
	case Stale:
		if listening && x.overflowed(l) {
			v.Cause = Overflow
			v.Sender.Process = procOf(l, Recent)
			v.Listener = v.Sender.Process
		} else if listening {
			v.Listener = procOf(l, Recent)
		}
	case Abort:
		v.Sender.Process = x.socketOwner(e.Src, e.Dst)
		if !v.Sender.Process.Known && listening {
			// A listener closed with connections still in its accept
			// queue resets them; they had no socket of their own yet.
			v.Listener = procOf(l, Recent)
		}
		if listening {
			inferOwner(&v.Sender.Process, l)
		}
	}
}

// inferOwner names the owner of the listener l as the owner of p, a socket
// on l's port whose own owner is unknown, marked as inferred
// (Seen: ViaListener): a connection that lived too briefly to be indexed
// was, almost always, accepted and handled by the process that listens on
// its port. Only a listener held by one process lends its owner: a
// pre-forked server's workers share theirs, and any of them may have
// handled the connection. A server that hands connections to a forked
// child is named wrongly; the mark says so.
func inferOwner(p *Proc, l proc.Entry) {
	if p.Owned || !l.Owned || l.Shared {
		return
	}
	p.Known, p.Owned, p.Seen = true, true, ViaListener
	p.PID, p.Comm, p.UID, p.Cgroup = l.Process.PID, l.Process.Comm, l.Process.UID, l.Process.Cgroup
}

// listenCheckFor is how long a live listener check answers for the same
// address, so that a burst of resets from one port costs one dump.
const listenCheckFor = 20 * time.Millisecond

// listeningNow re-reads the listeners for addr from the kernel (one
// sock_diag dump of the listening sockets of its family, and of the
// dual-stack ones) and returns whether one accepts addr, its entry (the
// snapshot's, updated with the live accept queue) and whether the kernel
// answered. When it did not, the snapshot's answer stands, unchecked.
func (x *Explainer) listeningNow(addr netip.AddrPort, snapListening bool, snap proc.Entry) (bool, proc.Entry, bool) {
	now := time.Now()
	if c := &x.listenCheck; c.addr == addr && now.Sub(c.at) < listenCheckFor {
		return c.listening, c.entry, true
	}
	fam := uint8(2) // AF_INET
	if addr.Addr().Unmap().Is6() {
		fam = 10 // AF_INET6
	}
	socks, err := x.lookup.AppendDump(x.listenBuf[:0], fam, proc.Mask(proc.Listen))
	if err != nil && !errors.Is(err, proc.ErrDumpInterrupted) {
		return snapListening, snap, false
	}
	if fam == 2 {
		// A dual-stack [::] listener accepts IPv4 too.
		if more, err := x.lookup.AppendDump(socks, 10, proc.Mask(proc.Listen)); err == nil {
			socks = more
		}
	}
	x.listenBuf = socks
	listening, entry := false, proc.Entry{}
	a := addr.Addr().Unmap()
	for _, s := range socks {
		la := s.Local.Addr().Unmap()
		if s.Local.Port() != addr.Port() {
			continue
		}
		if la == a || la.IsUnspecified() && (la.Is4() == a.Is4() || la.Is6() && !s.V6Only) {
			listening, entry = true, snap
			if !snapListening {
				// Bound since the last snapshot: the live socket is
				// all there is (its owner is found by the next refresh).
				entry = proc.Entry{Socket: s}
			}
			entry.RecvQ, entry.SendQ = s.RecvQ, s.SendQ
			break
		}
	}
	x.listenCheck = listenCheck{addr: addr, at: now, listening: listening, entry: entry}
	return listening, entry, true
}

// listenCheck is the last answer of listeningNow.
type listenCheck struct {
	addr      netip.AddrPort
	at        time.Time
	listening bool
	entry     proc.Entry
}

// overflowed reports whether listener l's accept queue is full or the
// namespace's ListenOverflows counter rose since the last look.
func (x *Explainer) overflowed(l proc.Entry) bool {
	full := l.SendQ > 0 && l.RecvQ >= l.SendQ
	if !x.haveCounters {
		return full
	}
	c, err := x.cfg.Counters()
	if err != nil {
		return full
	}
	n := c["TcpExt.ListenOverflows"]
	rose := n > x.overflows
	x.overflows = n
	return full || rose
}

// socketOwner finds the socket with this local and remote address: first
// in the kernel at this instant, then among the sockets the table saw
// recently.
func (x *Explainer) socketOwner(local, remote netip.AddrPort) Proc {
	if s, ok, err := x.lookup.Lookup(local, remote); err == nil && ok {
		p := Proc{Known: true, Inode: s.Inode, State: s.State.String(), UID: s.UID, Seen: Live}
		if owner, ok := x.owners.Lookup(s.Inode); ok {
			p.Owned, p.PID, p.Comm, p.UID, p.Cgroup = true, owner.PID, owner.Comm, owner.UID, owner.Cgroup
		}
		return p
	}
	if ent, ok := x.table.Conn(local, remote); ok {
		if !ent.Owned && ent.Inode != 0 {
			// The owner may have been found since the entry was made.
			ent.Process, ent.Owned = x.owners.Lookup(ent.Inode)
		}
		return procOf(ent, Recent)
	}
	x.budget.missed()
	return Proc{}
}

// procOf describes a table entry.
func procOf(e proc.Entry, seen Seen) Proc {
	if e.ViaListener {
		seen = ViaListener
	}
	p := Proc{Known: true, Inode: e.Inode, State: e.State.String(), UID: e.UID, Seen: seen}
	if e.Owned {
		p.Owned, p.PID, p.Comm, p.UID, p.Cgroup = true, e.Process.PID, e.Process.Comm, e.Process.UID, e.Process.Cgroup
	}
	return p
}

// Listener is a listening socket with its owner and accept queue.
type Listener struct {
	Addr           netip.AddrPort
	Queue, Backlog uint32 // connections waiting to be accepted, and the most allowed
	Process        Proc
}

// Listeners lists the namespace's listening sockets now, with their owners
// (KERNEL-NOTES fact 17: the queue is full when Queue >= Backlog).
func (x *Explainer) Listeners() ([]Listener, error) {
	var out []Listener
	for _, fam := range []uint8{2, 10} {
		socks, err := x.lookup.AppendDump(nil, fam, proc.Mask(proc.Listen))
		if err != nil && !errors.Is(err, proc.ErrDumpInterrupted) {
			return out, err
		}
		for _, s := range socks {
			l := Listener{Addr: s.Local, Queue: s.RecvQ, Backlog: s.SendQ}
			l.Process = Proc{Known: true, Inode: s.Inode, UID: s.UID, State: s.State.String(), Seen: Live}
			if owner, ok := x.owners.Lookup(s.Inode); ok {
				l.Process.Owned, l.Process.PID, l.Process.Comm, l.Process.UID, l.Process.Cgroup = true, owner.PID, owner.Comm, owner.UID, owner.Cgroup
			}
			out = append(out, l)
		}
	}
	return out, nil
}
