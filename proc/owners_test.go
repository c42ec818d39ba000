package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// fakeProc creates ROOT/PID with comm, status, cgroup and an fd directory
// whose links point at the given socket inodes (plus a pipe and /dev/null,
// which must be ignored).
func fakeProc(t testing.TB, root string, pid int, comm string, uid uint32, cgroup string, inodes ...uint64) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("failed to build fake /proc: %v", err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "fd"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "status"), fmt.Appendf(nil, "Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t%d\t%d\t%d\t%d\nGid:\t0\t0\t0\t0\n", comm, uid, uid+1, uid, uid), 0o644))
	must(os.WriteFile(filepath.Join(dir, "cgroup"), []byte("0::"+cgroup+"\n"), 0o644))
	must(os.Symlink("/dev/null", filepath.Join(dir, "fd", "0")))
	must(os.Symlink("pipe:[4026531840]", filepath.Join(dir, "fd", "1")))
	for i, ino := range inodes {
		addSocketFD(t, root, pid, 3+i, ino)
	}
}

func addSocketFD(t testing.TB, root string, pid, fd int, inode uint64) {
	t.Helper()
	if err := os.Symlink(fmt.Sprintf("socket:[%d]", inode), filepath.Join(root, strconv.Itoa(pid), "fd", strconv.Itoa(fd))); err != nil {
		t.Fatalf("failed to add socket fd: %v", err)
	}
}

// fakeClock is a settable time source for Owners.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock               { return &fakeClock{t: time.Unix(1700000000, 0)} }
func newTestOwners(t testing.TB, root string, cfg *OwnersConfig, c *fakeClock) *Owners {
	t.Helper()
	p, err := NewFS(root)
	if err != nil {
		t.Fatalf("failed to open fake /proc: %v", err)
	}
	o := NewOwners(p, cfg)
	o.now = c.now
	return o
}

func mustRefresh(t testing.TB, o *Owners) OwnersStats {
	t.Helper()
	if err := o.Refresh(); err != nil {
		t.Fatalf("failed to refresh owners: %v", err)
	}
	return o.Stats()
}

func TestOwnersLookup(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 100, "nginx", 33, "/system.slice/nginx.service", 5001, 5002)
	fakeProc(t, root, 200, "curl", 1000, "/user.slice/user-1000.slice/session-1.scope", 6001)
	// Not processes: must be ignored.
	for _, d := range []string{"net", "self", "sys"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	o := newTestOwners(t, root, nil, newFakeClock())
	st := mustRefresh(t, o)
	if st.Processes != 2 || st.Sockets != 3 || st.Scanned != 2 {
		t.Fatalf("stats = %+v, want 2 processes, 3 sockets, 2 scanned", st)
	}
	tests := []struct {
		inode uint64
		want  Process
		ok    bool
	}{
		{5001, Process{PID: 100, Comm: "nginx", UID: 33, Cgroup: "/system.slice/nginx.service"}, true},
		{5002, Process{PID: 100, Comm: "nginx", UID: 33, Cgroup: "/system.slice/nginx.service"}, true},
		{6001, Process{PID: 200, Comm: "curl", UID: 1000, Cgroup: "/user.slice/user-1000.slice/session-1.scope"}, true},
		{7777, Process{}, false},
		{4026531840, Process{}, false}, // the pipe's number is not a socket
	}
	for _, tt := range tests {
		got, ok := o.Lookup(tt.inode)
		if ok != tt.ok || got != tt.want {
			t.Errorf("Lookup(%d) = %+v, %v; want %+v, %v", tt.inode, got, ok, tt.want, tt.ok)
		}
	}
}

func TestOwnersIncremental(t *testing.T) {
	root := t.TempDir()
	clock := newFakeClock()
	fakeProc(t, root, 100, "server", 0, "/", 1)
	o := newTestOwners(t, root, &OwnersConfig{RescanInterval: time.Second, ListInterval: time.Second}, clock)
	mustRefresh(t, o)

	// Nothing changed and nothing missed: no fd directory is read again.
	clock.advance(time.Second)
	if st := mustRefresh(t, o); st.Scanned != 0 || st.Rescan {
		t.Fatalf("idle refresh scanned %d (rescan %v), want 0", st.Scanned, st.Rescan)
	}

	// A new process is scanned alone, by the next listing.
	fakeProc(t, root, 300, "client", 1000, "/", 3)
	if st := mustRefresh(t, o); st.Scanned != 0 {
		t.Fatalf("refresh within ListInterval scanned %d, want 0", st.Scanned)
	}
	clock.advance(time.Second)
	if st := mustRefresh(t, o); st.Scanned != 1 {
		t.Fatalf("refresh after a new pid scanned %d, want 1", st.Scanned)
	}
	if p, ok := o.Lookup(3); !ok || p.PID != 300 {
		t.Fatalf("Lookup(3) = %+v, %v; want pid 300", p, ok)
	}

	// A known process opens a socket: unseen until a Lookup misses; the
	// process hinted is read first, and nothing else.
	addSocketFD(t, root, 100, 9, 2)
	clock.advance(time.Second)
	mustRefresh(t, o)
	if _, ok := o.Lookup(2); ok {
		t.Fatal("new socket of a known pid found without a search")
	}
	o.Hint(100)
	if st := mustRefresh(t, o); st.Rescan || st.Scanned != 1 {
		t.Fatalf("refresh after a miss in a hinted pid = %+v, want one read and no rescan", st)
	}
	if p, ok := o.Lookup(2); !ok || p.PID != 100 {
		t.Fatalf("Lookup(2) after the search = %+v, %v; want pid 100", p, ok)
	}

	// Where a miss was found is looked at first next time, without a hint.
	addSocketFD(t, root, 100, 10, 4)
	o.Lookup(4)
	if st := mustRefresh(t, o); st.Rescan || st.Scanned != 1 {
		t.Fatalf("refresh after a miss in a recent pid = %+v, want one read and no rescan", st)
	}
	if p, ok := o.Lookup(4); !ok || p.PID != 100 {
		t.Fatalf("Lookup(4) = %+v, %v; want pid 100", p, ok)
	}

	// Full rescans are rate limited; a miss waits for the next one.
	o.Lookup(424242)
	clock.advance(2 * time.Second)
	if st := mustRefresh(t, o); !st.Rescan {
		t.Fatalf("refresh after an unresolved miss = %+v, want a rescan", st)
	}
	o.Lookup(424243)
	if st := mustRefresh(t, o); st.Rescan {
		t.Fatal("rescanned twice within RescanInterval")
	}
	clock.advance(time.Second)
	if st := mustRefresh(t, o); !st.Rescan {
		t.Fatal("pending miss not rescanned after RescanInterval")
	}

	// A closed socket disappears on rescan; a vanished process is dropped.
	if err := os.Remove(filepath.Join(root, "100", "fd", "9")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "300")); err != nil {
		t.Fatal(err)
	}
	o.Lookup(424242)
	clock.advance(time.Second)
	st := mustRefresh(t, o)
	if st.Processes != 1 || st.Sockets != 2 {
		t.Fatalf("after exit and close: %+v, want 1 process, 2 sockets", st)
	}
	if _, ok := o.Lookup(3); ok {
		t.Fatal("socket of a vanished pid still found")
	}
	if _, ok := o.Lookup(2); ok {
		t.Fatal("closed socket still found")
	}
}

// TestOwnersReusedFD: a socket closed and another opened on the same fd
// number is found too, although the fd number is not new.
func TestOwnersReusedFD(t *testing.T) {
	root := t.TempDir()
	clock := newFakeClock()
	fakeProc(t, root, 100, "server", 0, "/", 1, 2)
	o := newTestOwners(t, root, nil, clock)
	mustRefresh(t, o)
	link := filepath.Join(root, "100", "fd", "4")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	addSocketFD(t, root, 100, 4, 7)
	o.Lookup(7)
	o.Hint(100)
	if st := mustRefresh(t, o); st.Rescan {
		t.Fatalf("refresh = %+v, want the hinted process read again, not a rescan", st)
	}
	if p, ok := o.Lookup(7); !ok || p.PID != 100 {
		t.Fatalf("Lookup(7) = %+v, %v; want pid 100", p, ok)
	}
	if _, ok := o.Lookup(2); ok {
		t.Fatal("the closed socket's inode is still indexed")
	}
}

func TestOwnersProcessExitedMidScan(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 100, "alive", 0, "/", 1)
	// A process that exited between readdir(/proc) and the scan: its
	// directory (or its fd directory) is gone, which is ENOENT.
	if err := os.Mkdir(filepath.Join(root, "101"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := newTestOwners(t, root, nil, newFakeClock())
	st := mustRefresh(t, o)
	if st.Processes != 1 {
		t.Fatalf("stats = %+v, want only the live process", st)
	}
	if _, ok := o.Lookup(1); !ok {
		t.Fatal("live process's socket not found")
	}
}

func TestOwnersBounded(t *testing.T) {
	root := t.TempDir()
	for pid := 1; pid <= 5; pid++ {
		fakeProc(t, root, pid, "p", 0, "/", uint64(pid*10), uint64(pid*10+1))
	}
	o := newTestOwners(t, root, &OwnersConfig{MaxProcesses: 3, MaxSockets: 4}, newFakeClock())
	st := mustRefresh(t, o)
	if st.Processes != 3 || st.Sockets != 4 {
		t.Fatalf("stats = %+v, want 3 processes and 4 sockets (the caps)", st)
	}
}

func TestOwnersSharedSocket(t *testing.T) {
	root := t.TempDir()
	clock := newFakeClock()
	// A socket inherited across fork is in both fd tables.
	fakeProc(t, root, 10, "parent", 0, "/", 77)
	fakeProc(t, root, 11, "child", 0, "/", 77, 78)
	o := newTestOwners(t, root, nil, clock)
	mustRefresh(t, o)
	p, ok := o.Lookup(77)
	if !ok || (p.PID != 10 && p.PID != 11) {
		t.Fatalf("Lookup(shared) = %+v, %v", p, ok)
	}
	if q, ok := o.Sole(77); ok {
		t.Fatalf("Sole(shared) = %+v, want none", q)
	}
	if q, ok := o.Sole(78); !ok || q.PID != 11 {
		t.Fatalf("Sole(78) = %+v, %v; want pid 11", q, ok)
	}
	// When the holder exits the other one takes over after a search.
	if err := os.RemoveAll(filepath.Join(root, strconv.Itoa(p.PID))); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Hour)
	mustRefresh(t, o)
	o.Lookup(77)
	mustRefresh(t, o)
	if q, ok := o.Lookup(77); !ok || q.PID == p.PID {
		t.Fatalf("Lookup(shared) after %d exited = %+v, %v", p.PID, q, ok)
	}
}

func TestOwnersLookupNoAllocs(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 100, "x", 0, "/", 1)
	o := newTestOwners(t, root, nil, newFakeClock())
	mustRefresh(t, o)
	if n := testing.AllocsPerRun(1000, func() { o.Lookup(1); o.Lookup(2) }); n != 0 {
		t.Fatalf("Lookup allocates %v times, want 0", n)
	}
}

func TestOwnersRescanRereadsChangedProcess(t *testing.T) {
	root := t.TempDir()
	clock := newFakeClock()
	fakeProc(t, root, 100, "sh", 0, "/a", 1)
	o := newTestOwners(t, root, nil, clock)
	mustRefresh(t, o)
	// The process execs (new comm, new uid after setuid, moved cgroup).
	dir := filepath.Join(root, "100")
	for name, body := range map[string]string{"comm": "nginx\n", "status": "Uid:\t33\t33\t33\t33\n", "cgroup": "0::/b\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o.Lookup(2)
	clock.advance(time.Hour)
	mustRefresh(t, o)
	want := Process{PID: 100, Comm: "nginx", UID: 33, Cgroup: "/b"}
	if p, ok := o.Lookup(1); !ok || p != want {
		t.Fatalf("Lookup(1) after exec = %+v, %v; want %+v", p, ok, want)
	}
}

// TestOwnersWideSearchPaced: a miss that the hinted and recent processes
// do not explain lists the processes at once, but at most every wideEvery;
// a miss in between waits for the next one instead of being dropped.
func TestOwnersWideSearchPaced(t *testing.T) {
	root := t.TempDir()
	clock := newFakeClock()
	fakeProc(t, root, 100, "server", 0, "/", 1)
	o := newTestOwners(t, root, &OwnersConfig{ListInterval: time.Hour, RescanInterval: time.Hour}, clock)
	mustRefresh(t, o)

	fakeProc(t, root, 200, "curl", 0, "/", 2)
	o.Lookup(2)
	clock.advance(wideEvery)
	if st := mustRefresh(t, o); st.Scanned != 1 {
		t.Fatalf("refresh after a miss = %+v, want the new process scanned", st)
	}
	if p, ok := o.Lookup(2); !ok || p.PID != 200 {
		t.Fatalf("Lookup(2) = %+v, %v; want pid 200", p, ok)
	}

	fakeProc(t, root, 300, "wget", 0, "/", 3)
	o.Lookup(3)
	if st := mustRefresh(t, o); st.Scanned != 0 {
		t.Fatalf("refresh within wideEvery = %+v, want nothing read", st)
	}
	clock.advance(wideEvery)
	mustRefresh(t, o)
	if p, ok := o.Lookup(3); !ok || p.PID != 300 {
		t.Fatalf("Lookup(3) after wideEvery = %+v, %v; want pid 300", p, ok)
	}
}
