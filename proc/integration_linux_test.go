//go:build linux

package proc

import (
	"bufio"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite the recorded sock_diag and /proc fixtures under ../testdata/proc/ns")

// dialDiagIn opens a sock_diag socket inside ns.
func dialDiagIn(t *testing.T, ns *netnstest.NS) *Diag {
	t.Helper()
	var d *Diag
	ns.Do(t, func() error {
		var err error
		d, err = DialDiag()
		return err
	})
	t.Cleanup(func() { d.Close() })
	return d
}

// scenario is a set of sockets opened inside a test namespace.
type scenario struct {
	ln4, ln6, lnDual net.Listener
	est4             [2]net.Conn // client, server
	est6             [2]net.Conn
	mapped           [2]net.Conn // client over IPv4 to the dual-stack listener, server side (AF_INET6, ::ffff:)
	queued           net.Conn    // client whose connection waits in ln4's accept queue
	timeWait         netip.AddrPort
}

func (s *scenario) close() {
	for _, c := range []io.Closer{s.ln4, s.ln6, s.lnDual, s.est4[0], s.est4[1], s.est6[0], s.est6[1], s.mapped[0], s.mapped[1], s.queued} {
		if c != nil {
			c.Close()
		}
	}
}

func dialAccept(ln net.Listener, network, addr string) ([2]net.Conn, error) {
	c, err := net.Dial(network, addr)
	if err != nil {
		return [2]net.Conn{}, err
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		return [2]net.Conn{}, err
	}
	return [2]net.Conn{c, s}, nil
}

// openScenario opens, inside ns: an IPv4 listener with one connection left
// in its accept queue, an IPv6 (::1) listener, a dual-stack [::] listener,
// an established connection on each (one carrying 5 unread bytes), and a
// TIME-WAIT socket.
func openScenario(t *testing.T, ns *netnstest.NS) *scenario {
	t.Helper()
	s := &scenario{}
	t.Cleanup(s.close)
	ns.Do(t, func() error {
		var err error
		if s.ln4, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		if s.ln6, err = net.Listen("tcp6", "[::1]:0"); err != nil {
			return err
		}
		if s.lnDual, err = net.Listen("tcp", "[::]:0"); err != nil {
			return err
		}
		if s.est4, err = dialAccept(s.ln4, "tcp4", s.ln4.Addr().String()); err != nil {
			return err
		}
		if _, err := s.est4[0].Write([]byte("hello")); err != nil {
			return err
		}
		if s.est6, err = dialAccept(s.ln6, "tcp6", s.ln6.Addr().String()); err != nil {
			return err
		}
		dualPort := s.lnDual.Addr().(*net.TCPAddr).Port
		if s.mapped, err = dialAccept(s.lnDual, "tcp4", fmt.Sprintf("127.0.0.1:%d", dualPort)); err != nil {
			return err
		}
		// TIME-WAIT: the side that closes first keeps it.
		tw, err := dialAccept(s.ln4, "tcp4", s.ln4.Addr().String())
		if err != nil {
			return err
		}
		s.timeWait = tw[0].LocalAddr().(*net.TCPAddr).AddrPort()
		tw[0].Close()
		io.Copy(io.Discard, tw[1])
		tw[1].Close()
		// Left un-accepted: ln4's accept queue holds one connection.
		s.queued, err = net.Dial("tcp4", s.ln4.Addr().String())
		return err
	})
	// Let the data and FINs land.
	time.Sleep(50 * time.Millisecond)
	return s
}

// rawExchange sends r on d and returns every reply datagram, copied.
func rawExchange(t *testing.T, d *Diag, r *diagRequest) [][]byte {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.send(r); err != nil {
		t.Fatalf("failed to send request: %v", err)
	}
	var out [][]byte
	for {
		b, err := d.recv()
		if err != nil {
			t.Fatalf("failed to receive reply: %v", err)
		}
		out = append(out, slices.Clone(b))
		_, st, err := decodeDiag(b, r.seq, nil)
		if st.done || err != nil || !r.dump {
			return out
		}
	}
}

func writeHex(t *testing.T, path, comment string, msgs [][]byte) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n# Recorded from Linux by TestIntegrationDumpMatchesProc -update; one recvfrom(2) datagram per line, native (little-endian) byte order.\n", comment)
	for _, m := range msgs {
		b.WriteString(hex.EncodeToString(m))
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatalf("failed to write fixture: %v", err)
	}
}

type tupleKey struct{ local, remote netip.AddrPort }

func byTuple(ss []Socket) map[tupleKey]Socket {
	m := make(map[tupleKey]Socket, len(ss))
	for _, s := range ss {
		m[tupleKey{s.Local, s.Remote}] = s
	}
	return m
}

// compareWithProc checks sock_diag sockets against /proc/net/tcp{,6}
// field by field. The two differ only where documented: a listener's
// backlog (SendQ) is not in /proc, and /proc has no cookie or cgroup.
func compareWithProc(t *testing.T, diag, procfs []Socket) {
	t.Helper()
	dm, pm := byTuple(diag), byTuple(procfs)
	if len(dm) != len(pm) {
		t.Errorf("sock_diag has %d sockets, /proc %d:\n%v\n%v", len(dm), len(pm), diag, procfs)
	}
	for k, p := range pm {
		d, ok := dm[k]
		if !ok {
			t.Errorf("socket %v -> %v in /proc but not in sock_diag", k.local, k.remote)
			continue
		}
		if d.State != p.State || d.UID != p.UID || d.Inode != p.Inode || d.RecvQ != p.RecvQ {
			t.Errorf("socket %v -> %v differs:\n  sock_diag %+v\n  /proc     %+v", k.local, k.remote, d, p)
		}
		if d.State != Listen && d.SendQ != p.SendQ {
			t.Errorf("socket %v -> %v SendQ: sock_diag %d, /proc %d", k.local, k.remote, d.SendQ, p.SendQ)
		}
		if d.State != TimeWait && d.Cookie == 0 {
			t.Errorf("socket %v -> %v has no cookie", k.local, k.remote)
		}
	}
}

func TestIntegrationDumpMatchesProc(t *testing.T) {
	ns := netnstest.New(t)
	sc := openScenario(t, ns)
	d := dialDiagIn(t, ns)

	var diag4, diag6 []Socket
	var raw4, raw6 [][]byte
	var proc4, proc6 []byte
	ns.Do(t, func() error {
		// /proc/thread-self/net is this (switched) thread's namespace.
		var err error
		if proc4, err = os.ReadFile("/proc/thread-self/net/tcp"); err != nil {
			return err
		}
		proc6, err = os.ReadFile("/proc/thread-self/net/tcp6")
		return err
	})
	var err error
	if diag4, err = d.Dump(unix.AF_INET, AllStates); err != nil {
		t.Fatalf("failed to dump AF_INET: %v", err)
	}
	if diag6, err = d.Dump(unix.AF_INET6, AllStates); err != nil {
		t.Fatalf("failed to dump AF_INET6: %v", err)
	}
	raw4 = rawExchange(t, d, &diagRequest{dump: true, family: afInet, states: AllStates})
	raw6 = rawExchange(t, d, &diagRequest{dump: true, family: afInet6, states: AllStates})

	p4, err := ParseNetTCP(strings.NewReader(string(proc4)))
	if err != nil {
		t.Fatalf("failed to parse the namespace's tcp: %v", err)
	}
	p6, err := ParseNetTCP(strings.NewReader(string(proc6)))
	if err != nil {
		t.Fatalf("failed to parse the namespace's tcp6: %v", err)
	}
	compareWithProc(t, diag4, p4)
	compareWithProc(t, diag6, p6)

	// Spot checks against what the scenario opened.
	m4, m6 := byTuple(diag4), byTuple(diag6)
	ln4 := m4[tupleKey{sc.ln4.Addr().(*net.TCPAddr).AddrPort(), netip.MustParseAddrPort("0.0.0.0:0")}]
	if q, backlog, ok := ln4.AcceptQueue(); !ok || q != 1 || backlog == 0 {
		t.Errorf("IPv4 listener accept queue = %d/%d (%v), want 1 queued and a backlog: %+v", q, backlog, ok, ln4)
	}
	srv := m4[tupleKey{sc.est4[1].LocalAddr().(*net.TCPAddr).AddrPort(), sc.est4[1].RemoteAddr().(*net.TCPAddr).AddrPort()}]
	if srv.State != Established || srv.RecvQ != 5 {
		t.Errorf("server side of the IPv4 connection = %+v, want ESTAB with 5 bytes queued", srv)
	}
	found := false
	for k, s := range m4 {
		if k.local == sc.timeWait && s.State == TimeWait && s.Inode == 0 && s.Cookie != 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("no TIME-WAIT socket with a cookie at %v in %v", sc.timeWait, diag4)
	}
	mappedSrv := sc.mapped[1].LocalAddr().(*net.TCPAddr).AddrPort()
	nMapped := 0
	for k, s := range m6 {
		if k.local.Port() == mappedSrv.Port() && s.State == Established {
			if !k.local.Addr().Is4In6() {
				t.Errorf("dual-stack connection %v not IPv4-mapped", k.local)
			}
			nMapped++
		}
		if s.State == Listen && k.local.Addr().IsUnspecified() && s.V6Only {
			t.Errorf("dual-stack listener %v reported V6Only", k.local)
		}
		if s.State == Listen && k.local.Addr() == netip.IPv6Loopback() && !s.V6Only {
			t.Errorf("tcp6 listener %v not V6Only (Go sets IPV6_V6ONLY for tcp6)", k.local)
		}
	}
	if nMapped != 1 {
		t.Errorf("found %d IPv4-mapped server sockets in the AF_INET6 dump, want 1", nMapped)
	}
	for _, s := range diag4 {
		if s.Local.Port() == mappedSrv.Port() && s.State == Established {
			t.Errorf("AF_INET dump contains the dual-stack socket %+v", s)
		}
	}

	// ss(8) agrees on the number of sockets and on listener queues.
	out, err := ns.Command("ss", "-Htan").CombinedOutput()
	if err != nil {
		t.Fatalf("failed to run ss: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(diag4)+len(diag6) {
		t.Errorf("ss lists %d sockets, sock_diag %d:\n%s", len(lines), len(diag4)+len(diag6), out)
	}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "LISTEN" {
			continue
		}
		port := f[3][strings.LastIndexByte(f[3], ':')+1:]
		for _, s := range append(slices.Clone(diag4), diag6...) {
			if s.State == Listen && strconv.Itoa(int(s.Local.Port())) == port {
				if f[1] != strconv.Itoa(int(s.RecvQ)) || f[2] != strconv.Itoa(int(s.SendQ)) {
					t.Errorf("ss %q: Recv-Q/Send-Q differ from sock_diag %d/%d", line, s.RecvQ, s.SendQ)
				}
			}
		}
	}

	if *update {
		c, s := sc.est4[0].LocalAddr().(*net.TCPAddr).AddrPort(), sc.est4[0].RemoteAddr().(*net.TCPAddr).AddrPort()
		found := rawExchange(t, d, &diagRequest{family: afInet, states: AllStates, local: c, remote: s})
		missing := rawExchange(t, d, &diagRequest{family: afInet, states: AllStates, local: c, remote: netip.AddrPortFrom(s.Addr(), 1)})
		if err := os.MkdirAll(recordedRoot+"/net", 0o755); err != nil {
			t.Fatalf("failed to create fixture dir: %v", err)
		}
		writeHex(t, recordedRoot+"/dump4.hex", "SOCK_DIAG_BY_FAMILY NLM_F_DUMP AF_INET, all states", raw4)
		writeHex(t, recordedRoot+"/dump6.hex", "SOCK_DIAG_BY_FAMILY NLM_F_DUMP AF_INET6, all states", raw6)
		writeHex(t, recordedRoot+"/lookup_found.hex", fmt.Sprintf("exact lookup %v -> %v (ESTAB)", c, s), found)
		writeHex(t, recordedRoot+"/lookup_missing.hex", fmt.Sprintf("exact lookup %v -> %v (no such socket)", c, netip.AddrPortFrom(s.Addr(), 1)), missing)
		for name, b := range map[string][]byte{"tcp": proc4, "tcp6": proc6} {
			if err := os.WriteFile(recordedRoot+"/net/"+name, b, 0o644); err != nil {
				t.Fatalf("failed to write fixture: %v", err)
			}
		}
		t.Logf("recorded fixtures in %s", recordedRoot)
	}
}

func TestIntegrationLookup(t *testing.T) {
	ns := netnstest.New(t)
	sc := openScenario(t, ns)
	d := dialDiagIn(t, ns)
	addr := func(a net.Addr) netip.AddrPort { return a.(*net.TCPAddr).AddrPort() }

	tests := []struct {
		name          string
		local, remote netip.AddrPort
		wantLocal     netip.AddrPort
		wantState     State
	}{
		{"ipv4_client", addr(sc.est4[0].LocalAddr()), addr(sc.est4[0].RemoteAddr()), addr(sc.est4[0].LocalAddr()), Established},
		{"ipv4_server", addr(sc.est4[1].LocalAddr()), addr(sc.est4[1].RemoteAddr()), addr(sc.est4[1].LocalAddr()), Established},
		{"ipv6_client", addr(sc.est6[0].LocalAddr()), addr(sc.est6[0].RemoteAddr()), addr(sc.est6[0].LocalAddr()), Established},
		// An AF_INET request finds the dual-stack server socket, which
		// answers as AF_INET6 with IPv4-mapped addresses.
		{"ipv4_tuple_dual_stack_socket", unmapAP(addr(sc.mapped[1].LocalAddr())), unmapAP(addr(sc.mapped[1].RemoteAddr())),
			netip.AddrPortFrom(netip.AddrFrom16(addr(sc.mapped[1].LocalAddr()).Addr().As16()), addr(sc.mapped[1].LocalAddr()).Port()), Established},
		{"ipv4_mapped_query", netip.AddrPortFrom(netip.AddrFrom16(addr(sc.est4[0].LocalAddr()).Addr().As16()), addr(sc.est4[0].LocalAddr()).Port()),
			addr(sc.est4[0].RemoteAddr()), addr(sc.est4[0].LocalAddr()), Established},
		{"time_wait", sc.timeWait, addr(sc.ln4.Addr()), sc.timeWait, TimeWait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok, err := d.Lookup(tt.local, tt.remote)
			if err != nil {
				t.Fatalf("failed to look up: %v", err)
			}
			if !ok || s.Local != tt.wantLocal || s.State != tt.wantState {
				t.Fatalf("Lookup(%v, %v) = %+v, %v; want local %v in %v", tt.local, tt.remote, s, ok, tt.wantLocal, tt.wantState)
			}
		})
	}

	// A tuple nobody has: the kernel's exact lookup falls back to a listener
	// on the local port (inet_lookup); Lookup must not report that.
	lnAddr := addr(sc.ln4.Addr())
	bogus := netip.MustParseAddrPort("127.0.0.1:1")
	d.mu.Lock()
	raw, rawFound, err := d.lookup(lnAddr, bogus)
	d.mu.Unlock()
	if err != nil {
		t.Fatalf("failed to look up: %v", err)
	}
	t.Logf("kernel answer for %v -> %v: found=%v %+v", lnAddr, bogus, rawFound, raw)
	if s, ok, err := d.Lookup(lnAddr, bogus); err != nil || ok {
		t.Fatalf("Lookup(listener port, unknown peer) = %+v, %v, %v; want not found", s, ok, err)
	}
	if s, ok, err := d.Lookup(netip.MustParseAddrPort("127.0.0.1:9"), bogus); err != nil || ok {
		t.Fatalf("Lookup(nothing) = %+v, %v, %v; want not found", s, ok, err)
	}
	if _, _, err := d.Lookup(netip.MustParseAddrPort("127.0.0.1:9"), netip.MustParseAddrPort("[::1]:9")); err == nil {
		t.Fatal("Lookup(mixed families) succeeded, want an error")
	}
}

// TestHelperProcess is not a test: it is the child process the owner tests
// start (re-executing the test binary). It listens on 127.0.0.1, prints the
// port and waits for stdin to close.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("RSTWATCH_PROC_HELPER") != "listen" {
		return // not a test: the body runs only in a re-executed child
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// startListener runs TestHelperProcess inside ns and returns it and its port.
func startListener(t *testing.T, ns *netnstest.NS) (*exec.Cmd, io.Closer, uint16) {
	t.Helper()
	cmd := ns.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "RSTWATCH_PROC_HELPER=listen")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("failed to create pipe: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("failed to create pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("failed to start helper: %v", err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("failed to read helper's port: %v", err)
	}
	port, err := strconv.ParseUint(strings.TrimSpace(line), 10, 16)
	if err != nil {
		t.Fatalf("failed to parse helper's port %q: %v", line, err)
	}
	return cmd, stdin, uint16(port)
}

func findListener(t *testing.T, d *Diag, port uint16) Socket {
	t.Helper()
	ss, err := d.Dump(unix.AF_INET, Mask(Listen))
	if err != nil {
		t.Fatalf("failed to dump listeners: %v", err)
	}
	for _, s := range ss {
		if s.Local.Port() == port {
			return s
		}
	}
	t.Fatalf("no listener on port %d in %+v", port, ss)
	return Socket{}
}

func helperComm() string {
	c := filepath.Base(os.Args[0])
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}

func TestIntegrationOwners(t *testing.T) {
	ns := netnstest.New(t)
	d := dialDiagIn(t, ns)
	cmd, _, port := startListener(t, ns)
	s := findListener(t, d, port)

	p, err := NewFS("")
	if err != nil {
		t.Fatalf("failed to open /proc: %v", err)
	}
	o := NewOwners(p, nil)
	if err := o.Refresh(); err != nil {
		t.Fatalf("failed to refresh owners: %v", err)
	}
	if st := o.Stats(); st.Unreadable > 0 {
		t.Logf("%d processes' fd directories unreadable", st.Unreadable)
	}
	got, ok := o.Lookup(s.Inode)
	if !ok {
		t.Fatalf("no owner for listener inode %d (stats %+v)", s.Inode, o.Stats())
	}
	if got.PID != cmd.Process.Pid || got.Comm != helperComm() || got.UID != uint32(os.Getuid()) {
		t.Fatalf("owner of inode %d = %+v, want pid %d comm %q uid %d", s.Inode, got, cmd.Process.Pid, helperComm(), os.Getuid())
	}
	// The child's namespace as /proc/PID/net: the same listener, same inode.
	theirs, err := p.NetOf(cmd.Process.Pid).NetTCP()
	if err != nil {
		t.Fatalf("failed to read the child's net/tcp: %v", err)
	}
	if len(theirs) != 1 || theirs[0].Inode != s.Inode || theirs[0].State != Listen {
		t.Fatalf("/proc/%d/net/tcp = %+v, want only the listener with inode %d", cmd.Process.Pid, theirs, s.Inode)
	}
	self, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	if want := cgroupPath(self); got.Cgroup != want {
		t.Fatalf("owner cgroup = %q, want %q", got.Cgroup, want)
	}
}

func TestIntegrationTable(t *testing.T) {
	ns := netnstest.New(t)
	d := dialDiagIn(t, ns)
	p, err := NewFS("")
	if err != nil {
		t.Fatalf("failed to open /proc: %v", err)
	}
	tab := NewTable(d, NewOwners(p, &OwnersConfig{RescanInterval: time.Millisecond}), nil)
	refresh := func() time.Time {
		t.Helper()
		now := time.Now()
		if err := tab.Refresh(now); err != nil {
			t.Fatalf("failed to refresh table: %v", err)
		}
		return now
	}

	// A listener in a child process, then a connection of our own to it.
	cmd, stdin, port := startListener(t, ns)
	lnAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	var c net.Conn
	ns.Do(t, func() error {
		var err error
		c, err = net.Dial("tcp4", lnAddr.String())
		return err
	})
	defer c.Close()
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	refresh()
	refresh() // the second one resolves owners missed by the first

	l, ok := tab.Listening(lnAddr)
	if !ok || l.Process.PID != cmd.Process.Pid || !l.Live {
		t.Fatalf("Listening(%v) = %+v, %v; want the helper %d", lnAddr, l, ok, cmd.Process.Pid)
	}
	e, ok := tab.Conn(local, lnAddr)
	if !ok || !e.Live || e.Process.PID != os.Getpid() || e.State != Established {
		t.Fatalf("Conn(%v, %v) = %+v, %v; want our ESTAB socket", local, lnAddr, e, ok)
	}

	// The child exits: its listener closes, and the connection is reset.
	stdin.Close()
	cmd.Wait()
	// Abort our side too so nothing lingers.
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	before := time.Now()
	closedAt := refresh()

	if _, ok := tab.Listening(lnAddr); ok {
		t.Fatal("closed listener still Listening")
	}
	last, ok := tab.LastListener(lnAddr)
	if !ok || last.PID != cmd.Process.Pid || last.Comm != helperComm() || !last.Until.Equal(closedAt) || last.Seen.After(before) {
		t.Fatalf("LastListener(%v) = %+v, %v; want pid %d until %v", lnAddr, last, ok, cmd.Process.Pid, closedAt)
	}
	if _, ok := tab.LastListener(netip.AddrPortFrom(lnAddr.Addr(), port+1)); ok {
		t.Fatal("LastListener reported a port nobody listened on")
	}
	e, ok = tab.Conn(local, lnAddr)
	if !ok || e.Live || !e.Gone.Equal(closedAt) || e.Process.PID != os.Getpid() {
		t.Fatalf("Conn after close = %+v, %v; want a gone entry still owned by us", e, ok)
	}

	// Lookup finds a brand-new connection before any Refresh.
	var ln net.Listener
	var c2 net.Conn
	ns.Do(t, func() error {
		var err error
		if ln, err = net.Listen("tcp", "[::]:0"); err != nil {
			return err
		}
		c2, err = net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", ln.Addr().(*net.TCPAddr).Port))
		return err
	})
	defer ln.Close()
	defer c2.Close()
	l2, r2 := c2.LocalAddr().(*net.TCPAddr).AddrPort(), c2.RemoteAddr().(*net.TCPAddr).AddrPort()
	if _, ok := tab.Conn(l2, r2); ok {
		t.Fatal("new connection known before Lookup")
	}
	e, ok, err = tab.Lookup(l2, r2)
	if err != nil || !ok || !e.Live || e.State != Established {
		t.Fatalf("Lookup(%v, %v) = %+v, %v, %v", l2, r2, e, ok, err)
	}
	if e2, ok := tab.Conn(l2, r2); !ok || e2.Cookie != e.Cookie {
		t.Fatalf("Conn after Lookup = %+v, %v", e2, ok)
	}
	refresh()
	// The dual-stack listener answers IPv4 queries; the accepted side is
	// keyed by its unmapped IPv4 tuple.
	if l, ok := tab.Listening(r2); !ok || l.Local.Addr() != netip.IPv6Unspecified() {
		t.Fatalf("Listening(%v) = %+v, %v; want the [::] listener", r2, l, ok)
	}
	if e, ok := tab.Conn(r2, l2); !ok || !e.Local.Addr().Is4In6() {
		t.Fatalf("Conn(server side %v, %v) = %+v, %v; want the IPv4-mapped socket", r2, l2, e, ok)
	}
	if n := testing.AllocsPerRun(100, func() { tab.Conn(l2, r2); tab.Listening(r2); tab.LastListener(lnAddr) }); n != 0 {
		t.Fatalf("Table lookups allocate %v times, want 0", n)
	}
}

func TestIntegrationCounters(t *testing.T) {
	ns := netnstest.New(t)
	read := func() Counters {
		var c Counters
		ns.Do(t, func() error {
			p, err := NewFS("/proc/thread-self")
			if err != nil {
				return err
			}
			c, err = p.Counters()
			return err
		})
		return c
	}
	before := read()
	ns.Do(t, func() error {
		_, err := net.DialTimeout("tcp4", "127.0.0.1:9", time.Second)
		if !errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Errorf("dial to a closed port = %v, want ECONNREFUSED", err)
		}
		return nil
	})
	d := read().Sub(before)
	if d["Tcp.AttemptFails"] != 1 || d["Tcp.OutRsts"] != 1 {
		t.Fatalf("after one refused connect: AttemptFails +%d, OutRsts +%d; want +1, +1", d["Tcp.AttemptFails"], d["Tcp.OutRsts"])
	}
}

func TestIntegrationDiagClosed(t *testing.T) {
	d, err := DialDiag()
	if err != nil {
		t.Fatalf("failed to dial sock_diag: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("failed to close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
	if _, err := d.Dump(unix.AF_INET, AllStates); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Dump after Close = %v, want net.ErrClosed", err)
	}
	var op *net.OpError
	if _, err := d.Dump(unix.AF_INET, AllStates); !errors.As(err, &op) || op.Op != "dump" {
		t.Fatalf("Dump error %v is not a *net.OpError for dump", err)
	}
}

// BenchmarkIntegrationDump dumps a namespace holding 1,000 loopback
// connections (2,001 sockets) through sock_diag.
func BenchmarkIntegrationDump(b *testing.B) {
	ns := netnstest.New(b)
	var conns []io.Closer
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	var d *Diag
	ns.Do(b, func() error {
		var err error
		if d, err = DialDiag(); err != nil {
			return err
		}
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		conns = append(conns, ln)
		for range 1000 {
			c, err := dialAccept(ln, "tcp4", ln.Addr().String())
			if err != nil {
				return err
			}
			conns = append(conns, c[0], c[1])
		}
		return nil
	})
	b.Cleanup(func() { d.Close() })
	b.ReportAllocs()
	dst := make([]Socket, 0, 4096)
	for b.Loop() {
		var err error
		if dst, err = d.AppendDump(dst[:0], unix.AF_INET, AllStates); err != nil {
			b.Fatalf("failed to dump: %v", err)
		}
	}
	if len(dst) != 2001 {
		b.Fatalf("dumped %d sockets, want 2001", len(dst))
	}
}
