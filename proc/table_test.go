package proc

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeSource serves a settable snapshot, split by family the way the
// kernel splits dumps (IPv4-mapped sockets are AF_INET6).
type fakeSource struct {
	mu   sync.Mutex
	snap []Socket
	err  error // returned with the snapshot
}

func (f *fakeSource) set(ss ...Socket) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap = ss
}

func (f *fakeSource) AppendDump(dst []Socket, family uint8, states StateMask) ([]Socket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.snap {
		fam := uint8(afInet6)
		if s.Local.Addr().Is4() {
			fam = afInet
		}
		if fam == family && states.Has(s.State) {
			dst = append(dst, s)
		}
	}
	return dst, f.err
}

// fakeLookupSource adds exact lookups.
type fakeLookupSource struct {
	fakeSource
	live map[[2]netip.AddrPort]Socket
}

func (f *fakeLookupSource) Lookup(local, remote netip.AddrPort) (Socket, bool, error) {
	s, ok := f.live[[2]netip.AddrPort{local, remote}]
	return s, ok, nil
}

var t0 = time.Unix(1700000000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

func mustTableRefresh(t *testing.T, tab *Table, now time.Time) {
	t.Helper()
	if err := tab.Refresh(now); err != nil {
		t.Fatalf("failed to refresh table: %v", err)
	}
}

func testOwners(t *testing.T) *Owners {
	root := t.TempDir()
	fakeProc(t, root, 100, "nginx", 33, "/system.slice/nginx.service", 10, 20, 21, 22)
	fakeProc(t, root, 200, "worker", 1000, "/", 11)
	return newTestOwners(t, root, nil, newFakeClock())
}

func TestTableConnLifecycle(t *testing.T) {
	src := &fakeSource{}
	tab := NewTable(src, testOwners(t), &TableConfig{RecentFor: time.Minute})
	a := Socket{Local: ap("10.0.0.1:443"), Remote: ap("192.0.2.9:50000"), State: Established, Inode: 10, Cookie: 5}
	src.set(a)
	mustTableRefresh(t, tab, at(0))
	e, ok := tab.Conn(a.Local, a.Remote)
	if !ok || !e.Live || !e.Owned || e.Process.PID != 100 || e.Process.Comm != "nginx" || !e.FirstSeen.Equal(at(0)) {
		t.Fatalf("Conn = %+v, %v; want a live conn owned by nginx", e, ok)
	}
	if _, ok := tab.Conn(a.Remote, a.Local); ok {
		t.Fatal("Conn found the reversed tuple")
	}

	// Closing: TIME-WAIT has no inode but the same cookie; the owner stays.
	tw := a
	tw.State, tw.Inode, tw.UID = TimeWait, 0, 0
	src.set(tw)
	mustTableRefresh(t, tab, at(time.Second))
	e, _ = tab.Conn(a.Local, a.Remote)
	if e.State != TimeWait || !e.Owned || e.Process.PID != 100 || !e.FirstSeen.Equal(at(0)) || !e.Seen.Equal(at(time.Second)) {
		t.Fatalf("TIME-WAIT entry = %+v, want the same socket, still owned", e)
	}

	// Gone: remembered for RecentFor.
	src.set()
	mustTableRefresh(t, tab, at(2*time.Second))
	e, ok = tab.Conn(a.Local, a.Remote)
	if !ok || e.Live || !e.Gone.Equal(at(2*time.Second)) || e.Process.PID != 100 {
		t.Fatalf("gone entry = %+v, %v", e, ok)
	}
	if st := tab.Stats(); st.Live != 0 || st.Recent != 1 {
		t.Fatalf("stats = %+v, want 1 recent", st)
	}
	mustTableRefresh(t, tab, at(61*time.Second))
	if _, ok := tab.Conn(a.Local, a.Remote); !ok {
		t.Fatal("evicted before RecentFor")
	}
	mustTableRefresh(t, tab, at(62*time.Second))
	if _, ok := tab.Conn(a.Local, a.Remote); ok {
		t.Fatal("still remembered after RecentFor")
	}

	// The 4-tuple reused by a new socket (new cookie) is a new entry.
	src.set(a)
	mustTableRefresh(t, tab, at(70*time.Second))
	b := a
	b.Cookie, b.Inode = 6, 11
	src.set(b)
	mustTableRefresh(t, tab, at(71*time.Second))
	e, _ = tab.Conn(a.Local, a.Remote)
	if e.Cookie != 6 || e.Process.PID != 200 || !e.FirstSeen.Equal(at(71*time.Second)) {
		t.Fatalf("reused tuple = %+v, want the new socket owned by worker", e)
	}
}

func TestTableListeners(t *testing.T) {
	src := &fakeSource{}
	tab := NewTable(src, testOwners(t), &TableConfig{ListenerFor: time.Hour})
	any80 := Socket{Local: ap("0.0.0.0:80"), Remote: ap("0.0.0.0:0"), State: Listen, Inode: 20, SendQ: 511}
	dual443 := Socket{Local: ap("[::]:443"), Remote: ap("[::]:0"), State: Listen, Inode: 21}
	v6only := Socket{Local: ap("[::]:9000"), Remote: ap("[::]:0"), State: Listen, Inode: 22, V6Only: true}
	lo25 := Socket{Local: ap("127.0.0.1:25"), Remote: ap("0.0.0.0:0"), State: Listen, Inode: 99, UID: 8}
	src.set(any80, dual443, v6only, lo25)
	mustTableRefresh(t, tab, at(0))

	tests := []struct {
		name  string
		addr  string
		local string // "" if none
	}{
		{"ipv4_wildcard", "10.1.2.3:80", "0.0.0.0:80"},
		{"ipv4_on_dual_stack", "127.0.0.1:443", "[::]:443"},
		{"ipv4_mapped_query", "[::ffff:10.0.0.1]:443", "[::]:443"},
		{"ipv6_on_dual_stack", "[2001:db8::1]:443", "[::]:443"},
		{"ipv4_not_on_v6only", "127.0.0.1:9000", ""},
		{"ipv6_on_v6only", "[::1]:9000", "[::]:9000"},
		{"exact", "127.0.0.1:25", "127.0.0.1:25"},
		{"other_address", "10.0.0.1:25", ""},
		{"ipv6_not_on_ipv4_wildcard", "[::1]:80", ""},
		{"nobody", "127.0.0.1:81", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := tab.Listening(ap(tt.addr))
			if tt.local == "" {
				if ok {
					t.Fatalf("Listening(%s) = %v, want none", tt.addr, e.Local)
				}
				return
			}
			if !ok || e.Local != ap(tt.local) {
				t.Fatalf("Listening(%s) = %v, %v; want %s", tt.addr, e.Local, ok, tt.local)
			}
		})
	}
	if e, _ := tab.Listening(ap("1.2.3.4:80")); e.Process.PID != 100 || !e.Owned {
		t.Fatalf("listener owner = %+v, want nginx", e.Process)
	}

	// Port 80 and 25 close.
	src.set(dual443, v6only)
	mustTableRefresh(t, tab, at(5*time.Second))
	if _, ok := tab.Listening(ap("10.1.2.3:80")); ok {
		t.Fatal("closed listener still Listening")
	}
	l, ok := tab.LastListener(ap("10.1.2.3:80"))
	want := LastListener{Local: ap("0.0.0.0:80"), PID: 100, Comm: "nginx", UID: 33, Inode: 20, Seen: at(0), Until: at(5 * time.Second)}
	if !ok || l != want {
		t.Fatalf("LastListener(:80) = %+v, %v; want %+v", l, ok, want)
	}
	// Unknown owner: the socket's UID is still reported.
	l, ok = tab.LastListener(ap("127.0.0.1:25"))
	if !ok || l.PID != 0 || l.UID != 8 {
		t.Fatalf("LastListener(:25) = %+v, %v; want no pid, uid 8", l, ok)
	}
	if _, ok := tab.LastListener(ap("10.0.0.1:25")); ok {
		t.Fatal("LastListener matched a different address")
	}
	mustTableRefresh(t, tab, at(time.Hour+5*time.Second))
	if _, ok := tab.LastListener(ap("10.1.2.3:80")); ok {
		t.Fatal("LastListener remembered past ListenerFor")
	}
}

func TestTableLastListenersBounded(t *testing.T) {
	src := &fakeSource{}
	tab := NewTable(src, nil, &TableConfig{MaxLastListeners: 3})
	for i := range 5 {
		src.set(Socket{Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(1000+i)), State: Listen, Inode: uint64(i + 1)})
		mustTableRefresh(t, tab, at(time.Duration(2*i)*time.Second))
		src.set()
		mustTableRefresh(t, tab, at(time.Duration(2*i+1)*time.Second))
	}
	if st := tab.Stats(); st.LastListeners != 3 {
		t.Fatalf("stats = %+v, want 3 last listeners", st)
	}
	if _, ok := tab.LastListener(ap("127.0.0.1:1001")); ok {
		t.Fatal("oldest closed listener not evicted")
	}
	if l, ok := tab.LastListener(ap("127.0.0.1:1004")); !ok || !l.Until.Equal(at(9*time.Second)) {
		t.Fatalf("newest closed listener = %+v, %v", l, ok)
	}
}

func TestTableBounded(t *testing.T) {
	src := &fakeSource{}
	tab := NewTable(src, nil, &TableConfig{MaxConns: 3, RecentFor: time.Hour})
	conn := func(port uint16) Socket {
		return Socket{Local: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port), Remote: ap("10.0.0.2:80"), State: Established, Inode: uint64(port), Cookie: uint64(port)}
	}
	src.set(conn(1), conn(2))
	mustTableRefresh(t, tab, at(0))
	src.set(conn(3))
	mustTableRefresh(t, tab, at(time.Second)) // 1 and 2 gone
	// Two new live sockets evict the gone ones, oldest first.
	src.set(conn(3), conn(4), conn(5))
	mustTableRefresh(t, tab, at(2*time.Second))
	if st := tab.Stats(); st.Live != 3 || st.Recent != 0 || st.Dropped != 0 {
		t.Fatalf("stats = %+v, want 3 live and the gone ones evicted", st)
	}
	// More live sockets than the cap: the excess is dropped, counted.
	src.set(conn(3), conn(4), conn(5), conn(6), conn(7))
	mustTableRefresh(t, tab, at(3*time.Second))
	if st := tab.Stats(); st.Live != 3 || st.Dropped != 2 {
		t.Fatalf("stats = %+v, want 3 live and 2 dropped", st)
	}
}

func TestTableViaListener(t *testing.T) {
	src := &fakeSource{}
	tab := NewTable(src, testOwners(t), nil)
	ln := Socket{Local: ap("[::]:8080"), Remote: ap("[::]:0"), State: Listen, Inode: 20}
	// Accepted by the kernel, not yet by accept(2): no inode yet. It is a
	// dual-stack socket seen through IPv4.
	queued := Socket{Local: ap("[::ffff:127.0.0.1]:8080"), Remote: ap("[::ffff:127.0.0.1]:40000"), State: Established, Cookie: 77}
	src.set(queued, ln)
	mustTableRefresh(t, tab, at(0))
	e, ok := tab.Conn(ap("127.0.0.1:8080"), ap("127.0.0.1:40000"))
	if !ok || !e.Owned || !e.ViaListener || e.Process.PID != 100 {
		t.Fatalf("queued conn = %+v, %v; want owner of the listener", e, ok)
	}
	// accept(2) in another process gives it an inode and its real owner.
	accepted := queued
	accepted.Inode = 11
	src.set(accepted, ln)
	mustTableRefresh(t, tab, at(time.Second))
	e, _ = tab.Conn(ap("127.0.0.1:8080"), ap("127.0.0.1:40000"))
	if e.ViaListener || e.Process.PID != 200 || !e.FirstSeen.Equal(at(0)) {
		t.Fatalf("accepted conn = %+v, want owned by worker directly", e)
	}
}

func TestTableInterruptedDump(t *testing.T) {
	src := &fakeSource{}
	tab := NewTable(src, nil, nil)
	a := Socket{Local: ap("10.0.0.1:1"), Remote: ap("10.0.0.2:2"), State: Established, Inode: 1}
	ln := Socket{Local: ap("10.0.0.1:80"), State: Listen, Inode: 2}
	src.set(a, ln)
	mustTableRefresh(t, tab, at(0))
	src.set()
	src.err = fmt.Errorf("wrapped: %w", ErrDumpInterrupted)
	if err := tab.Refresh(at(time.Second)); !errors.Is(err, ErrDumpInterrupted) {
		t.Fatalf("Refresh = %v, want ErrDumpInterrupted", err)
	}
	if e, _ := tab.Conn(a.Local, a.Remote); !e.Live {
		t.Fatal("partial dump marked a connection gone")
	}
	if _, ok := tab.Listening(ln.Local); !ok {
		t.Fatal("partial dump closed a listener")
	}
	src.err = errors.New("boom")
	if err := tab.Refresh(at(2 * time.Second)); err == nil {
		t.Fatal("Refresh hid a dump error")
	}
}

func TestTableLookup(t *testing.T) {
	syn := Socket{Local: ap("10.0.0.1:40000"), Remote: ap("10.0.0.2:443"), State: SynSent, Inode: 11, Cookie: 3}
	src := &fakeLookupSource{live: map[[2]netip.AddrPort]Socket{{syn.Local, syn.Remote}: syn}}
	tab := NewTable(src, testOwners(t), nil)
	mustTableRefresh(t, tab, at(0))
	e, ok, err := tab.Lookup(syn.Local, syn.Remote)
	if err != nil || !ok || !e.Live || e.State != SynSent || e.Process.PID != 200 {
		t.Fatalf("Lookup = %+v, %v, %v; want the SYN-SENT socket of worker", e, ok, err)
	}
	if c, ok := tab.Conn(syn.Local, syn.Remote); !ok || c.Cookie != 3 {
		t.Fatalf("Conn after Lookup = %+v, %v", c, ok)
	}
	// The socket dies before the next snapshot: it becomes a recent entry.
	mustTableRefresh(t, tab, time.Now().Add(time.Second))
	if c, ok := tab.Conn(syn.Local, syn.Remote); !ok || c.Live || c.Process.PID != 200 {
		t.Fatalf("Conn after the SYN-SENT socket vanished = %+v, %v", c, ok)
	}
	// Unknown to the kernel: the cached entry is returned.
	delete(src.live, [2]netip.AddrPort{syn.Local, syn.Remote})
	if e, ok, err := tab.Lookup(syn.Local, syn.Remote); err != nil || !ok || e.Live {
		t.Fatalf("Lookup of a vanished socket = %+v, %v, %v; want the recent entry", e, ok, err)
	}
	// The /proc fallback cannot look up: Lookup is Conn.
	ptab := NewTable(&fakeSource{}, nil, nil)
	if _, ok, err := ptab.Lookup(syn.Local, syn.Remote); ok || err != nil {
		t.Fatalf("Lookup without a lookuper = %v, %v", ok, err)
	}
}

func TestTableConcurrentReaders(t *testing.T) {
	src := &fakeSource{}
	tab := NewTable(src, testOwners(t), &TableConfig{MaxConns: 64, RecentFor: time.Second})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tab.Conn(ap("10.0.0.1:5"), ap("10.0.0.2:80"))
				tab.Listening(ap("10.0.0.1:80"))
				tab.LastListener(ap("10.0.0.1:80"))
			}
		})
	}
	for i := range 200 {
		var ss []Socket
		for j := range 10 {
			ss = append(ss, Socket{Local: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(i+j)), Remote: ap("10.0.0.2:80"), State: Established, Inode: 10, Cookie: uint64(i + j)})
		}
		if i%2 == 0 {
			ss = append(ss, Socket{Local: ap("10.0.0.1:80"), State: Listen, Inode: 20})
		}
		src.set(ss...)
		mustTableRefresh(t, tab, at(time.Duration(i)*100*time.Millisecond))
	}
	close(stop)
	wg.Wait()
	if st := tab.Stats(); st.Live+st.Recent > 64 {
		t.Fatalf("stats = %+v, exceeds MaxConns", st)
	}
}

func TestTableLookupsNoAllocs(t *testing.T) {
	src := &fakeSource{}
	tab := NewTable(src, testOwners(t), nil)
	src.set(Socket{Local: ap("[::ffff:10.0.0.1]:5"), Remote: ap("[::ffff:10.0.0.2]:80"), State: Established, Inode: 10},
		Socket{Local: ap("[::]:80"), State: Listen, Inode: 20})
	mustTableRefresh(t, tab, at(0))
	src.set()
	mustTableRefresh(t, tab, at(time.Second))
	n := testing.AllocsPerRun(1000, func() {
		tab.Conn(ap("10.0.0.1:5"), ap("10.0.0.2:80"))
		tab.Listening(ap("10.0.0.1:80"))
		tab.LastListener(ap("10.0.0.1:80"))
	})
	if n != 0 {
		t.Fatalf("lookups allocate %v times, want 0", n)
	}
}

// TestTableListenersCapped: listeners count against MaxConns like
// connections, and a dump records at most twice MaxConns sockets.
func TestTableListenersCapped(t *testing.T) {
	src := &fakeSource{}
	tab := NewTable(src, nil, &TableConfig{MaxConns: 2})
	var ss []Socket
	for i := range 5 {
		ss = append(ss, Socket{Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(1000+i)), State: Listen, Inode: uint64(i + 1)})
	}
	src.set(ss...)
	mustTableRefresh(t, tab, at(0))
	// Four of five fit in the dump; two of those in the listeners map.
	if st := tab.Stats(); st.Listeners != 2 || st.Dropped != 3 {
		t.Fatalf("stats = %+v, want 2 listeners and 3 dropped", st)
	}
	// A dump cut short says nothing about what it did not show: the
	// listeners it missed are not taken for closed.
	if st := tab.Stats(); st.LastListeners != 0 {
		t.Fatalf("stats = %+v, want no closed listeners", st)
	}
}

// TestTableLastListenersChurn: a port that listens and closes over and
// over keeps one closed listener, and the eviction order stays bounded.
func TestTableLastListenersChurn(t *testing.T) {
	src := &fakeSource{}
	tab := NewTable(src, nil, &TableConfig{MaxLastListeners: 8})
	ln := Socket{Local: ap("127.0.0.1:7000"), State: Listen, Inode: 1}
	for i := range 1000 {
		src.set(ln)
		mustTableRefresh(t, tab, at(time.Duration(2*i)*time.Second))
		src.set()
		mustTableRefresh(t, tab, at(time.Duration(2*i+1)*time.Second))
	}
	if st := tab.Stats(); st.LastListeners != 1 {
		t.Fatalf("stats = %+v, want 1 closed listener", st)
	}
	if n := len(tab.lastOrder); n > 2*len(tab.last)+64 {
		t.Fatalf("%d eviction references for %d closed listeners", n, len(tab.last))
	}
	if l, ok := tab.LastListener(ap("127.0.0.1:7000")); !ok || !l.Until.Equal(at(1999*time.Second)) {
		t.Fatalf("LastListener = %+v, %v; want the last close", l, ok)
	}
}

// TestTableRefreshListeners: a listeners-only refresh notices closed
// listeners but leaves connections alone.
func TestTableRefreshListeners(t *testing.T) {
	src := &fakeSource{}
	tab := NewTable(src, nil, nil)
	ln := Socket{Local: ap("127.0.0.1:7000"), State: Listen, Inode: 1}
	conn := Socket{Local: ap("127.0.0.1:7000"), Remote: ap("127.0.0.1:50000"), State: Established, Inode: 2, Cookie: 2}
	src.set(ln, conn)
	mustTableRefresh(t, tab, at(0))
	src.set()
	r, err := tab.RefreshListeners(at(time.Second))
	if err != nil || r.Full {
		t.Fatalf("RefreshListeners = %+v, %v", r, err)
	}
	if _, ok := tab.LastListener(ap("127.0.0.1:7000")); !ok {
		t.Fatal("closed listener not noticed")
	}
	if e, ok := tab.Conn(conn.Local, conn.Remote); !ok || !e.Live {
		t.Fatalf("connection = %+v, %v; want still live until a full refresh", e, ok)
	}
	mustTableRefresh(t, tab, at(2*time.Second))
	if e, ok := tab.Conn(conn.Local, conn.Remote); !ok || e.Live || !e.Gone.Equal(at(2*time.Second)) {
		t.Fatalf("connection after a full refresh = %+v, %v; want gone", e, ok)
	}
}

// TestTableSharedListenerLendsNoOwner: a listener several processes hold
// (a pre-forked server) does not name the owner of its queued connections.
func TestTableSharedListenerLendsNoOwner(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 100, "nginx", 33, "/", 20)
	fakeProc(t, root, 101, "nginx", 33, "/", 20)
	tab := NewTable(&fakeSource{}, newTestOwners(t, root, nil, newFakeClock()), nil)
	src := tab.src.(*fakeSource)
	ln := Socket{Local: ap("0.0.0.0:80"), State: Listen, Inode: 20}
	queued := Socket{Local: ap("10.0.0.1:80"), Remote: ap("10.0.0.2:40000"), State: Established, Cookie: 5}
	src.set(ln, queued)
	mustTableRefresh(t, tab, at(0))
	if l, ok := tab.Listening(ap("10.0.0.1:80")); !ok || !l.Owned || !l.Shared {
		t.Fatalf("listener = %+v, %v; want owned and shared", l, ok)
	}
	if e, ok := tab.Conn(queued.Local, queued.Remote); !ok || e.Owned || e.ViaListener {
		t.Fatalf("queued conn = %+v, %v; want no owner", e, ok)
	}
}

// TestTableQueuedLookedUpAgain: a connection seen in the accept queue (no
// inode) is looked up again at the next refresh, even a listeners-only
// one, and gets the owner of the process that accepted it.
func TestTableQueuedLookedUpAgain(t *testing.T) {
	src := &fakeLookupSource{live: map[[2]netip.AddrPort]Socket{}}
	tab := NewTable(src, testOwners(t), nil)
	ln := Socket{Local: ap("127.0.0.1:8080"), State: Listen, Inode: 20}
	queued := Socket{Local: ap("127.0.0.1:8080"), Remote: ap("127.0.0.1:40000"), State: Established, Cookie: 77}
	src.set(ln, queued)
	mustTableRefresh(t, tab, at(0))
	if e, _ := tab.Conn(queued.Local, queued.Remote); !e.ViaListener || e.Process.PID != 100 {
		t.Fatalf("queued conn = %+v, want the listener's owner", e)
	}
	// The worker accepted it; the table's next dump shows listeners only.
	accepted := queued
	accepted.Inode = 11
	src.live[[2]netip.AddrPort{queued.Local, queued.Remote}] = accepted
	if _, err := tab.RefreshListeners(at(time.Second)); err != nil {
		t.Fatal(err)
	}
	if e, _ := tab.Conn(queued.Local, queued.Remote); e.ViaListener || !e.Owned || e.Process.PID != 200 || e.Inode != 11 {
		t.Fatalf("accepted conn = %+v, want owned by the worker", e)
	}
	if n := len(tab.queued); n != 0 {
		t.Fatalf("%d connections still queued for a lookup", n)
	}
}
