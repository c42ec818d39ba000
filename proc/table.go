package proc

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// TableConfig bounds a Table. A nil *TableConfig means defaults.
type TableConfig struct {
	// MaxConns caps the connections remembered, live and recently gone
	// together (default 65536). Gone ones are evicted first, oldest first;
	// live sockets beyond the cap are not recorded. It also caps the
	// listeners, and a dump holds at most twice as many sockets.
	MaxConns int
	// RecentFor is how long a connection is remembered after it vanished
	// from the socket tables (default 2 minutes).
	RecentFor time.Duration
	// MaxLastListeners caps the remembered closed listeners (default 4096);
	// the one closed longest ago is evicted first.
	MaxLastListeners int
	// ListenerFor is how long a closed listener is remembered (default 1 hour).
	ListenerFor time.Duration
	// States selects the sockets Refresh dumps (default AllStates).
	States StateMask
	// Lookup, if set, answers Table.Lookup instead of the Source (for
	// example a second *Diag), so that a lookup on the capture path never
	// waits behind a dump that Refresh runs on the Source.
	Lookup interface {
		Lookup(local, remote netip.AddrPort) (Socket, bool, error)
	}
}

func (c *TableConfig) withDefaults() TableConfig {
	var o TableConfig
	if c != nil {
		o = *c
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 1 << 16
	}
	if o.RecentFor <= 0 {
		o.RecentFor = 2 * time.Minute
	}
	if o.MaxLastListeners <= 0 {
		o.MaxLastListeners = 4096
	}
	if o.ListenerFor <= 0 {
		o.ListenerFor = time.Hour
	}
	if o.States == 0 {
		o.States = AllStates
	}
	return o
}

// Entry is what a Table knows about one socket.
type Entry struct {
	Socket
	Process Process // the owner, if Owned
	Owned   bool    // Process is known
	// Shared means other processes hold the socket too (inherited across
	// fork): Process is one of them.
	Shared bool
	// ViaListener means Process is the owner of the listener on Local, not
	// of this socket: the socket has no inode because it still waits in the
	// accept queue, or because it was closed (TIME-WAIT, FIN-WAIT-2). Only
	// a listener that one process holds lends its owner.
	ViaListener bool
	FirstSeen   time.Time // first snapshot or lookup that showed the socket
	Seen        time.Time // latest snapshot or lookup that showed it
	Live        bool      // in the latest snapshot (or found by Lookup since)
	Gone        time.Time // if !Live: the first snapshot that no longer showed it
}

// LastListener describes a listener that has closed.
type LastListener struct {
	Local netip.AddrPort // the address it was bound to (maybe a wildcard)
	PID   int            // 0 if the owner was never known
	Comm  string
	UID   uint32
	Inode uint64
	Seen  time.Time // the last snapshot that showed it listening
	Until time.Time // the first snapshot that did not: it closed between Seen and Until
}

// TableStats counts a Table's contents.
type TableStats struct {
	Live          int // connections in the latest snapshot
	Recent        int // connections remembered after they vanished
	Listeners     int
	LastListeners int
	Dropped       int // live sockets not recorded because of MaxConns, cumulative
}

// Refreshed says what a RefreshAll or RefreshListeners did.
type Refreshed struct {
	Sockets int  // sockets the dump returned
	Full    bool // every state was dumped, not only listeners
	// Took is how long the dump and the merge took, without the owner
	// index's update (which paces its own costly part).
	Took time.Duration
}

type connKey struct{ local, remote netip.AddrPort }

// Table is a bounded socket table for attributing resets. Refresh it
// cheaply and often (a sock_diag dump of both families plus an incremental
// owner update): connections that lived more than a refresh interval stay
// attributable for RecentFor after a reset closed them, closed listeners are
// remembered per address so a refused port can say who listened there last
// and until when, and Lookup asks the kernel about one 4-tuple at once (for
// a SYN just seen).
//
// Addresses are keyed with IPv4-mapped IPv6 addresses unmapped, so an IPv4
// 4-tuple from a packet finds a dual-stack AF_INET6 socket. One goroutine may
// Refresh while others read; Conn, Listening and LastListener do not
// allocate.
type Table struct {
	src    Source
	owners *Owners
	cfg    TableConfig

	refreshMu sync.Mutex // serialises Refresh

	mu        sync.RWMutex
	gen       uint64 // of the last full dump: conns not in it are gone
	lgen      uint64 // of the last dump of listeners
	conns     map[connKey]tableEntry
	gone      []goneRef // conns that vanished, in order of Gone
	listeners map[netip.AddrPort]tableEntry
	last      map[netip.AddrPort]LastListener
	lastOrder []lastRef // closed listeners in order of Until, for eviction
	// queued holds live connections last seen without an inode, still
	// in a listener's accept queue: each refresh looks them up again
	// (exactly, which is cheap) until accept(2) gives them an inode,
	// so that the process that accepted them is found without waiting
	// for the next full dump.
	queued  map[connKey]struct{}
	dropped int
}

// maxQueued bounds Table.queued; recheckPerRefresh bounds the lookups
// one refresh spends on it.
const (
	maxQueued         = 256
	recheckPerRefresh = 64
)

type lastRef struct {
	key   netip.AddrPort
	until time.Time
}

// tableEntry is an Entry as the table stores it: about 100 bytes less
// (the owner is a pointer into the owner index, times are nanoseconds),
// which matters with tens of thousands of sockets.
type tableEntry struct {
	Socket
	owner             *Process // nil: unknown
	first, seen, gone int64    // Unix nanoseconds; 0: unset
	gen               uint64
	flags             entryFlags
}

type entryFlags uint8

const (
	flagShared entryFlags = 1 << iota
	flagViaListener
	flagLive
)

func (e *tableEntry) owned() bool           { return e.owner != nil }
func (e *tableEntry) has(f entryFlags) bool { return e.flags&f != 0 }

// setOwner records p (nil: unknown) as the owner.
func (e *tableEntry) setOwner(p *Process, shared, via bool) {
	e.owner = p
	e.flags &^= flagShared | flagViaListener
	if shared {
		e.flags |= flagShared
	}
	if via {
		e.flags |= flagViaListener
	}
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// entry expands e. It does not allocate.
func (e *tableEntry) entry() Entry {
	x := Entry{Socket: e.Socket, FirstSeen: fromNanos(e.first), Seen: fromNanos(e.seen), Gone: fromNanos(e.gone),
		Shared: e.has(flagShared), ViaListener: e.has(flagViaListener), Live: e.has(flagLive)}
	if e.owner != nil {
		x.Process, x.Owned = *e.owner, true
	}
	return x
}

type goneRef struct {
	key  connKey
	when time.Time
}

// NewTable returns an empty Table fed by src (a *Diag, or an FS as the
// fallback) and owners (nil: no process attribution).
func NewTable(src Source, owners *Owners, cfg *TableConfig) *Table {
	return &Table{
		src:       src,
		owners:    owners,
		cfg:       cfg.withDefaults(),
		conns:     make(map[connKey]tableEntry),
		listeners: make(map[netip.AddrPort]tableEntry),
		queued:    make(map[connKey]struct{}),
		last:      make(map[netip.AddrPort]LastListener),
	}
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().Is4In6() {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap
}

func keyOf(s *Socket) connKey { return connKey{unmapAP(s.Local), unmapAP(s.Remote)} }

// Refresh dumps all TCP sockets of both families, updates the owner index
// for sockets not seen before and merges the snapshot taken at now: sockets
// that disappeared become recent entries, listeners that disappeared become
// LastListeners, and expired or excess entries are evicted. If the dump was
// interrupted (ErrDumpInterrupted) the partial snapshot is merged and the
// error returned; sockets missing from it are only marked gone, not lost.
func (t *Table) Refresh(now time.Time) error {
	_, err := t.refresh(now, t.cfg.States)
	return err
}

// RefreshListeners is Refresh for listening sockets only: much cheaper
// when there are many connections (the kernel walks only its listener
// hash), for when something else says connections did not change.
// Connections are left as they are.
func (t *Table) RefreshListeners(now time.Time) (Refreshed, error) {
	return t.refresh(now, t.cfg.States&Mask(Listen))
}

// RefreshAll is Refresh, saying what it did.
func (t *Table) RefreshAll(now time.Time) (Refreshed, error) {
	return t.refresh(now, t.cfg.States)
}

// eachDumper is a Source that hands over a dump datagram by datagram
// (*Diag), so that a refresh never holds the whole dump in memory.
type eachDumper interface {
	dumpEach(family uint8, states StateMask, begin func(), fn func([]Socket)) error
}

// unowned is a socket a refresh recorded before its owner was known.
type unowned struct {
	listen bool
	key    connKey // for a listener, key.local only
	inode  uint64
}

func (t *Table) refresh(now time.Time, states StateMask) (Refreshed, error) {
	t.refreshMu.Lock()
	defer t.refreshMu.Unlock()

	start := time.Now()
	var ownersTook time.Duration
	full := states != states&Mask(Listen)
	t.mu.Lock()
	t.lgen++
	if full {
		t.gen++
	}
	t.mu.Unlock()

	// Merge each datagram's sockets as they come. A dump holds at most
	// two tables' worth (connections and listeners); the rest is counted
	// as dropped.
	limit := 2 * t.cfg.MaxConns
	var pending []unowned
	var n, over, attemptStart, overStart int
	begin := func() { n, over = attemptStart, overStart }
	merge := func(ss []Socket) {
		t.mu.Lock()
		defer t.mu.Unlock()
		for i := range ss {
			if n >= limit {
				over++
				continue
			}
			n++
			s := &ss[i]
			old, existed := t.lookupLocked(s)
			e, put := t.putLocked(s, now)
			if !put || s.Inode == 0 || e.owned() && !e.has(flagViaListener) || t.owners == nil || existed && old.Inode == s.Inode {
				continue
			}
			// A socket the owner index was not asked about yet: a
			// miss makes the coming owner refresh look for it, first
			// in the process that owns the listener on its port (the
			// accepting server, as a rule).
			t.owners.Lookup(s.Inode)
			if s.State != Listen {
				if l, ok := t.listeningLocked(s.Local); ok && l.owned() {
					t.owners.Hint(l.owner.PID)
				}
			}
			if len(pending) < maxPendingOwners {
				pending = append(pending, unowned{s.State == Listen, connKey{unmapAP(s.Local), unmapAP(s.Remote)}, s.Inode})
			}
		}
	}
	var errs []error
	for _, fam := range []uint8{afInet, afInet6} {
		attemptStart, overStart = n, over
		var err error
		if d, ok := t.src.(eachDumper); ok {
			err = d.dumpEach(fam, states, begin, merge)
		} else {
			var buf []Socket
			buf, err = t.src.AppendDump(nil, fam, states)
			merge(buf)
		}
		if err != nil {
			if !errors.Is(err, ErrDumpInterrupted) {
				return Refreshed{Sockets: n, Full: full}, fmt.Errorf("proc: failed to refresh socket table: %w", err)
			}
			errs = append(errs, err)
		}
	}
	// A dump cut at its cap is as incomplete as an interrupted one.
	partial := len(errs) > 0 || over > 0
	t.recheckQueued(merge)

	if t.owners != nil {
		ostart := time.Now()
		if err := t.owners.Refresh(); err != nil {
			errs = append(errs, err)
		}
		ownersTook = time.Since(ostart)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropped += over
	for _, u := range pending {
		t.ownLocked(u)
	}
	nowNs := nanos(now)
	for k, e := range t.listeners {
		// Skip what this snapshot showed, what a Lookup found after it was
		// taken, and everything if an interrupted dump may have missed it.
		if e.gen == t.lgen || e.seen > nowNs || partial {
			continue
		}
		t.rememberListenerLocked(k, &e, now)
		delete(t.listeners, k)
	}
	if full {
		for k, e := range t.conns {
			if e.gen == t.gen && e.Inode == 0 && (e.State == Established || e.State == CloseWait) && len(t.queued) < maxQueued {
				if _, ok := t.listeningLocked(k.local); ok {
					t.queued[k] = struct{}{}
				}
			}
			if e.gen == t.gen && !e.owned() && e.Inode == 0 {
				if l, ok := t.listeningLocked(k.local); ok && l.owned() && !l.has(flagShared) {
					e.setOwner(l.owner, false, true)
					t.conns[k] = e
				}
			}
			if e.gen == t.gen || !e.has(flagLive) || e.seen > nowNs || partial {
				continue
			}
			e.flags &^= flagLive
			e.gone = nowNs
			t.conns[k] = e
			t.gone = append(t.gone, goneRef{k, now})
		}
	}
	t.evictLocked(now)
	return Refreshed{Sockets: n, Full: full, Took: time.Since(start) - ownersTook}, errors.Join(errs...)
}

// recheckQueued looks up the queued connections again and merges those
// that have an inode now; it forgets those that got one, closed or are
// gone from the table.
func (t *Table) recheckQueued(merge func([]Socket)) {
	lk, ok := t.src.(lookuper)
	if !ok {
		return
	}
	t.mu.RLock()
	keys := make([]connKey, 0, min(len(t.queued), recheckPerRefresh))
	for k := range t.queued {
		if len(keys) == recheckPerRefresh {
			break
		}
		keys = append(keys, k)
	}
	t.mu.RUnlock()
	for _, k := range keys {
		s, found, err := lk.Lookup(k.local, k.remote)
		if err == nil && found && s.Inode == 0 {
			continue // still waiting for accept(2)
		}
		t.mu.Lock()
		delete(t.queued, k)
		t.mu.Unlock()
		if err == nil && found {
			merge([]Socket{s})
		}
	}
}

// maxPendingOwners bounds the sockets one refresh fills in owners for
// after the owner index's update; the others get theirs at the next
// refresh or lookup.
const maxPendingOwners = 4096

// ownLocked fills in the owner of u's entry, if it is still the same
// socket and the owner index now knows it.
func (t *Table) ownLocked(u unowned) {
	var e tableEntry
	var ok bool
	if u.listen {
		e, ok = t.listeners[u.key.local]
	} else {
		e, ok = t.conns[u.key]
	}
	if !ok || e.Inode != u.inode || e.owned() && !e.has(flagViaListener) {
		return
	}
	p, shared, found := t.owners.ref(u.inode)
	if !found {
		return
	}
	e.setOwner(p, shared, false)
	if u.listen {
		t.listeners[u.key.local] = e
	} else {
		t.conns[u.key] = e
	}
}

// lookupLocked finds the current entry for s's key.
func (t *Table) lookupLocked(s *Socket) (tableEntry, bool) {
	if s.State == Listen {
		e, ok := t.listeners[unmapAP(s.Local)]
		return e, ok
	}
	e, ok := t.conns[keyOf(s)]
	return e, ok
}

// putLocked records s as seen at now, in the current generation.
func (t *Table) putLocked(s *Socket, now time.Time) (tableEntry, bool) {
	if s.State == Listen {
		k := unmapAP(s.Local)
		e, ok := t.listeners[k]
		if !ok && len(t.listeners) >= t.cfg.MaxConns {
			t.dropped++
			return tableEntry{}, false
		}
		t.update(&e, s, now, t.lgen)
		t.listeners[k] = e
		return e, true
	}
	k := keyOf(s)
	e, ok := t.conns[k]
	if !ok && len(t.conns) >= t.cfg.MaxConns {
		t.evictLocked(now)
		if len(t.conns) >= t.cfg.MaxConns && !t.evictOldestGoneLocked() {
			t.dropped++
			return tableEntry{}, false
		}
	}
	t.update(&e, s, now, t.gen)
	t.conns[k] = e
	return e, true
}

func (t *Table) update(e *tableEntry, s *Socket, now time.Time, gen uint64) {
	if e.first == 0 || !sameSocket(&e.Socket, s) {
		// A new socket, possibly reusing a 4-tuple.
		*e = tableEntry{first: nanos(now)}
	}
	e.Socket, e.seen, e.gone, e.gen = *s, nanos(now), 0, gen
	e.flags |= flagLive
	if (!e.owned() || e.has(flagViaListener|flagShared)) && t.owners != nil && s.Inode != 0 {
		if p, shared, ok := t.owners.ref(s.Inode); ok {
			e.setOwner(p, shared, false)
		}
	}
}

// sameSocket reports whether b is a later view of socket a. The cookie
// identifies a socket for its whole life, TIME-WAIT included (the timewait
// socket inherits it), while the inode drops to 0 once the owner closes it;
// the /proc fallback has inodes only.
func sameSocket(a, b *Socket) bool {
	if a.Cookie != 0 && b.Cookie != 0 {
		return a.Cookie == b.Cookie
	}
	return a.Inode == 0 || b.Inode == 0 || a.Inode == b.Inode
}

func (t *Table) rememberListenerLocked(k netip.AddrPort, e *tableEntry, now time.Time) {
	if _, ok := t.last[k]; !ok {
		for len(t.last) >= t.cfg.MaxLastListeners && t.popLastLocked() {
		}
	}
	l := LastListener{Local: e.Local, Inode: e.Inode, Seen: fromNanos(e.seen), Until: now}
	if e.owned() {
		l.PID, l.Comm, l.UID = e.owner.PID, e.owner.Comm, e.owner.UID
	} else {
		l.UID = e.UID
	}
	t.last[k] = l
	t.lastOrder = append(t.lastOrder, lastRef{k, now})
	if len(t.lastOrder) > 64 && len(t.lastOrder) > 2*len(t.last) {
		// References to entries since replaced: keep the live ones.
		live := make([]lastRef, 0, 2*len(t.last))
		for _, r := range t.lastOrder {
			if l, ok := t.last[r.key]; ok && l.Until.Equal(r.until) {
				live = append(live, r)
			}
		}
		t.lastOrder = live
	}
}

// popLastLocked forgets the closed listener that closed longest ago, if
// any, and reports whether one was left to forget. Each closed listener
// has one reference in lastOrder, in order of closing (a listener closed
// again later has a newer one), so this is O(1) amortised.
func (t *Table) popLastLocked() bool {
	for len(t.lastOrder) > 0 {
		r := t.lastOrder[0]
		t.lastOrder = t.lastOrder[1:]
		if l, ok := t.last[r.key]; ok && l.Until.Equal(r.until) {
			delete(t.last, r.key)
			return true
		}
	}
	return false
}

// evictLocked drops gone connections older than RecentFor and closed
// listeners older than ListenerFor.
func (t *Table) evictLocked(now time.Time) {
	for len(t.gone) > 0 && now.Sub(t.gone[0].when) >= t.cfg.RecentFor {
		t.popGoneLocked()
	}
	if len(t.gone) > 0 && cap(t.gone) > 64 && len(t.gone) < cap(t.gone)/4 {
		t.gone = append([]goneRef(nil), t.gone...) // let the old backing array go
	}
	for len(t.lastOrder) > 0 && now.Sub(t.lastOrder[0].until) >= t.cfg.ListenerFor {
		r := t.lastOrder[0]
		t.lastOrder = t.lastOrder[1:]
		if l, ok := t.last[r.key]; ok && l.Until.Equal(r.until) {
			delete(t.last, r.key)
		}
	}
	if len(t.lastOrder) > 0 && cap(t.lastOrder) > 64 && len(t.lastOrder) < cap(t.lastOrder)/4 {
		t.lastOrder = append([]lastRef(nil), t.lastOrder...)
	}
}

// evictOldestGoneLocked evicts one gone connection, if any.
func (t *Table) evictOldestGoneLocked() bool {
	for len(t.gone) > 0 {
		if t.popGoneLocked() {
			return true
		}
	}
	return false
}

// popGoneLocked removes the oldest gone reference and, if its entry is still
// the same gone connection, the entry; it reports whether it did.
func (t *Table) popGoneLocked() bool {
	g := t.gone[0]
	t.gone = t.gone[1:]
	if e, ok := t.conns[g.key]; ok && !e.has(flagLive) && e.gone == nanos(g.when) {
		delete(t.conns, g.key)
		return true
	}
	return false
}

// Conn returns what the table knows about the connection with this local
// and remote address, live or recently gone. The direction matters: for a
// reset seen on loopback, try both orders.
func (t *Table) Conn(local, remote netip.AddrPort) (Entry, bool) {
	k := connKey{unmapAP(local), unmapAP(remote)}
	t.mu.RLock()
	e, ok := t.conns[k]
	t.mu.RUnlock()
	return e.entry(), ok
}

// wildcards returns the listener keys that accept connections to addr, most
// specific first: addr itself, the wildcard of its family, and for IPv4 the
// IPv6 wildcard (dual-stack unless IPV6_V6ONLY).
func wildcards(addr netip.AddrPort) (keys [3]netip.AddrPort, n int) {
	addr = unmapAP(addr)
	p := addr.Port()
	keys[0] = addr
	if addr.Addr().Is4() {
		keys[1] = netip.AddrPortFrom(netip.IPv4Unspecified(), p)
		keys[2] = netip.AddrPortFrom(netip.IPv6Unspecified(), p)
		return keys, 3
	}
	keys[1] = netip.AddrPortFrom(netip.IPv6Unspecified(), p)
	return keys, 2
}

// Listening returns the listener in the latest snapshot that accepts
// connections to addr: one bound to addr itself, to the wildcard address of
// its family, or, for IPv4, a dual-stack [::] listener.
func (t *Table) Listening(addr netip.AddrPort) (Entry, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, ok := t.listeningLocked(addr)
	return e.entry(), ok
}

func (t *Table) listeningLocked(addr netip.AddrPort) (tableEntry, bool) {
	keys, n := wildcards(addr)
	for i, k := range keys[:n] {
		e, ok := t.listeners[k]
		if !ok || (i == 2 && e.V6Only) {
			continue
		}
		return e, true
	}
	return tableEntry{}, false
}

// LastListener returns the most recently closed listener that accepted
// connections to addr (bound to addr, its family's wildcard or [::]), within
// ListenerFor.
func (t *Table) LastListener(addr netip.AddrPort) (LastListener, bool) {
	keys, n := wildcards(addr)
	t.mu.RLock()
	defer t.mu.RUnlock()
	var best LastListener
	found := false
	for _, k := range keys[:n] {
		if l, ok := t.last[k]; ok && (!found || l.Until.After(best.Until)) {
			best, found = l, true
		}
	}
	return best, found
}

type lookuper interface {
	Lookup(local, remote netip.AddrPort) (Socket, bool, error)
}

var _ lookuper = (*Diag)(nil)

// Lookup asks the kernel for the socket with exactly this 4-tuple (for
// instance on seeing an outgoing SYN, while the SYN-SENT socket exists),
// records it in the table as live and returns it. If the kernel has no such
// socket, or the Source cannot look up single sockets (the /proc fallback),
// it returns what Conn knows.
func (t *Table) Lookup(local, remote netip.AddrPort) (Entry, bool, error) {
	var l lookuper = t.cfg.Lookup
	ok := l != nil
	if !ok {
		l, ok = t.src.(lookuper)
	}
	if !ok {
		e, found := t.Conn(local, remote)
		return e, found, nil
	}
	s, found, err := l.Lookup(local, remote)
	if err != nil {
		return Entry{}, false, err
	}
	if !found {
		e, found := t.Conn(local, remote)
		return e, found, nil
	}
	missed := false
	if t.owners != nil && s.Inode != 0 {
		_, found := t.owners.Lookup(s.Inode) // a miss asks the next Refresh to look
		missed = !found
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	te, _ := t.putLocked(&s, now)
	e := te.entry()
	if missed && s.State != Listen {
		// Look first in the process on either end's listener: the
		// server that accepted it, or, for a client on this host, the
		// server it connected to (often the same program).
		for _, a := range [2]netip.AddrPort{s.Local, s.Remote} {
			if l, ok := t.listeningLocked(a); ok && l.owned() {
				t.owners.Hint(l.owner.PID)
			}
		}
	}
	return e, true, nil
}

// Stats counts the table's contents.
func (t *Table) Stats() TableStats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	st := TableStats{Listeners: len(t.listeners), LastListeners: len(t.last), Dropped: t.dropped}
	for _, e := range t.conns {
		if e.has(flagLive) {
			st.Live++
		} else {
			st.Recent++
		}
	}
	return st
}
