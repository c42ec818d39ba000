package proc

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Process is the owner of a socket, read from /proc/PID (proc(5)).
type Process struct {
	PID    int
	Comm   string // /proc/PID/comm, at most 15 bytes
	UID    uint32 // real UID from the Uid: line of /proc/PID/status
	Cgroup string // cgroup path from /proc/PID/cgroup: the v2 "0::" line, else the first v1 line with a path other than "/"
}

// OwnersConfig bounds an Owners index. A nil *OwnersConfig means defaults.
type OwnersConfig struct {
	// MaxProcesses caps the processes tracked (default 65536); processes
	// beyond it are not indexed.
	MaxProcesses int
	// MaxSockets caps the indexed socket inodes (default 1<<20).
	MaxSockets int
	// RescanInterval is the least time between full rescans (every fd of
	// every known process read again), which a Lookup miss that cheaper
	// means could not resolve requests (default 1s). A rescan that took
	// long waits longer: at least rescanCostFactor times its duration, so
	// that rescans cost at most about 0.3% of a core. (Under churn most
	// such misses are sockets that closed before anyone looked.)
	RescanInterval time.Duration
	// ListInterval is the most time between two listings of the
	// processes (default 5s), which scan new processes and drop exited
	// ones; a Lookup miss not found among the processes hinted or found
	// lately lists them at once.
	ListInterval time.Duration
}

func (c *OwnersConfig) withDefaults() OwnersConfig {
	var o OwnersConfig
	if c != nil {
		o = *c
	}
	if o.MaxProcesses <= 0 {
		o.MaxProcesses = 1 << 16
	}
	if o.MaxSockets <= 0 {
		o.MaxSockets = 1 << 20
	}
	if o.RescanInterval <= 0 {
		o.RescanInterval = time.Second
	}
	if o.ListInterval <= 0 {
		o.ListInterval = 5 * time.Second
	}
	return o
}

// rescanCostFactor paces full rescans to their cost (see RescanInterval).
const rescanCostFactor = 300

// wideEvery is the least time between two wide searches for missed
// sockets: a listing of the processes and a stat(2) of each fd directory.
const wideEvery = 200 * time.Millisecond

// maxPending bounds the inodes a Lookup miss queues, and the processes
// Hint queues, for the next Refresh.
const maxPending = 256

// Owners maps socket inodes to the processes holding them, as `ss -p` does,
// by reading the /proc/PID/fd/N -> "socket:[INODE]" symlinks. The index is
// kept between calls to Refresh and updated incrementally: new processes are
// scanned when a listing finds them and vanished ones are dropped.
//
// After a Lookup has missed, Refresh looks for the missing inodes, cheapest
// means first: the fd directories of processes named by Hint, then of those
// in which missed sockets were found lately, then, in a wide search that
// runs at most every 200ms, of new processes and of those whose number of
// open files changed (one stat(2) each: Linux reports it as the fd
// directory's size). In each it reads the links of fd numbers it has not
// seen before and, if that was not enough, every link of those processes
// that have few (an fd number may have been closed and reused). Only then,
// at most once per RescanInterval, it reads every link of every process
// again; inodes still missing wait for that rescan without being searched
// for again. A socket shared by several processes (inherited across fork)
// is attributed to one of them, and Sole says it is shared.
//
// Lookup, Sole and Hint may run concurrently with Refresh.
type Owners struct {
	fs  FS
	cfg OwnersConfig
	now func() time.Time

	refreshMu sync.Mutex // serialises Refresh; guards procState.fds, recent and scratch
	// scratch holds the small /proc file scan is reading.
	scratch    []byte
	gen        uint64
	lastList   time.Time
	lastRescan time.Time
	rescanCost time.Duration
	// recent holds the processes in which missed sockets were found
	// lately, most recent first: a process that opened one connection
	// tends to open more.
	recent [8]int
	// retry holds inodes still missing after the cheap means, until the
	// next full rescan settles them (found, or closed meanwhile).
	retry []uint64
	// deferred holds misses the hinted and recent processes did not
	// explain, waiting for the next wide search (a listing and a stat of
	// every process), which runs at most every wideEvery.
	deferred []uint64
	lastWide time.Time

	// Inodes Lookup missed and processes Hint named, for the next
	// Refresh; fixed arrays so that the capture path does not allocate.
	pendMu   sync.Mutex
	missed   [maxPending]uint64
	nMissed  int
	hinted   [maxPending]int
	nHinted  int
	overflow bool // a miss did not fit: search as if for a full rescan

	mu     sync.RWMutex
	procs  map[int]*procState
	inodes map[uint64]holder

	stats OwnersStats
}

// holder is the indexed owner of an inode.
type holder struct {
	pid    int
	shared bool // another process holds it too
}

// OwnersStats describes the last Refresh.
type OwnersStats struct {
	Processes  int  // processes tracked
	Sockets    int  // socket inodes indexed
	Scanned    int  // fd directories read by the last Refresh
	Unreadable int  // processes whose sockets could not be read (EACCES: needs CAP_DAC_READ_SEARCH for the fd directory, CAP_SYS_PTRACE for its links)
	Rescan     bool // the last Refresh re-read every known process
}

type procState struct {
	// *Process is never modified once set, only replaced (an exec
	// changes comm): tables keep pointers to it.
	*Process
	gen uint64
	// fds is what the last read of the fd directory found, by fd
	// number; only Refresh touches it (under refreshMu).
	fds  []fdInode
	size int64 // the fd directory's st_size then: the number of open files
}

// fdInode is one open file: a socket's inode, or 0 for anything else.
type fdInode struct {
	fd  int
	ino uint64
}

// NewOwners returns an empty index over the processes of p. Call Refresh to
// fill it.
func NewOwners(p FS, cfg *OwnersConfig) *Owners {
	return &Owners{
		fs:     p,
		cfg:    cfg.withDefaults(),
		now:    time.Now,
		procs:  make(map[int]*procState),
		inodes: make(map[uint64]holder),
	}
}

// Lookup returns the process holding the socket with this inode. A miss
// (for a non-zero inode) asks the next Refresh to look for it. It does not
// allocate.
func (o *Owners) Lookup(inode uint64) (Process, bool) {
	p, _, ok := o.get(inode)
	if !ok && inode != 0 {
		o.pendMu.Lock()
		if o.nMissed < len(o.missed) {
			o.missed[o.nMissed] = inode
			o.nMissed++
		} else {
			o.overflow = true
		}
		o.pendMu.Unlock()
	}
	return p, ok
}

// Sole returns the process holding the socket with this inode if no other
// known process holds it too. Unlike Lookup, a miss requests nothing.
func (o *Owners) Sole(inode uint64) (Process, bool) {
	p, shared, ok := o.get(inode)
	return p, ok && !shared
}

// Hint asks the next Refresh to look in pid's fd directory first, for
// instance because pid owns the listener that accepted a connection whose
// owner is missing. It does not allocate.
func (o *Owners) Hint(pid int) {
	o.pendMu.Lock()
	if o.nHinted < len(o.hinted) {
		o.hinted[o.nHinted] = pid
		o.nHinted++
	}
	o.pendMu.Unlock()
}

// get is Lookup without requesting a search on a miss.
func (o *Owners) get(inode uint64) (p Process, shared, ok bool) {
	ref, shared, ok := o.ref(inode)
	if !ok {
		return Process{}, false, false
	}
	return *ref, shared, true
}

// ref is get returning the index's own, never modified, Process.
func (o *Owners) ref(inode uint64) (p *Process, shared, ok bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	h, ok := o.inodes[inode]
	if !ok {
		return nil, false, false
	}
	ps := o.procs[h.pid]
	if ps == nil || ps.Process == nil {
		return nil, false, false
	}
	return ps.Process, h.shared, true
}

// Stats returns counts from the last Refresh.
func (o *Owners) Stats() OwnersStats {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.stats
}

// scanned is what one process's files said.
type scanned struct {
	pid    int
	proc   Process
	fds    []fdInode
	size   int64
	gone   bool // exited during the scan
	denied bool
	meta   bool // proc holds a fresh comm, uid and cgroup
}

// readMode says how much of a process to read.
type readMode uint8

const (
	readNew   readMode = iota // a process not seen before: everything
	readAdded                 // links of fd numbers not seen before only
	readAll                   // every link again, and comm (and more if it changed)
)

// Refresh looks for the inodes Lookups missed since the last Refresh (see
// Owners) and, at least every ListInterval or when a miss is not found in
// the processes it looks at first, lists the processes under the FS root:
// it scans the new ones and drops the vanished ones. Processes that exit
// mid-scan and fd directories it may not read are skipped, not errors.
func (o *Owners) Refresh() error {
	o.refreshMu.Lock()
	defer o.refreshMu.Unlock()

	o.pendMu.Lock()
	missed := append(o.deferred, o.missed[:o.nMissed]...)
	retry := o.retry
	o.retry, o.deferred = nil, nil
	hinted := append([]int(nil), o.hinted[:o.nHinted]...)
	overflow := o.overflow
	o.nMissed, o.nHinted, o.overflow = 0, 0, false
	o.pendMu.Unlock()

	// Read the files without holding the lock so Lookups keep going.
	st := OwnersStats{}
	apply := func(results []scanned) {
		st.Scanned += len(results)
		o.mu.Lock()
		defer o.mu.Unlock()
		for i := range results {
			if o.applyLocked(&results[i]) {
				st.Unreadable++
			}
		}
	}

	// Look for what Lookups missed, cheapest first: the processes
	// hinted and those that held missed sockets lately.
	missing := o.stillMissing(missed)
	seen := make(map[int]bool)
	if len(missing) > 0 {
		var targets []*procState
		o.mu.RLock()
		for _, pid := range append(hinted, o.recent[:]...) {
			if p := o.procs[pid]; p != nil && !seen[pid] {
				seen[pid] = true
				targets = append(targets, p)
			}
		}
		o.mu.RUnlock()
		missing = o.search(targets, missing, apply)
	}

	now := o.now()
	wide := (len(missing) > 0 || overflow) && now.Sub(o.lastWide) >= wideEvery
	if !wide && len(missing) > 0 {
		// Under churn most of these closed before anyone looked: one
		// wide search per wideEvery serves them all.
		o.deferred = missing[:min(len(missing), maxPending)]
		missing = nil
	}
	if wide || now.Sub(o.lastList) >= o.cfg.ListInterval || o.lastList.IsZero() {
		known, err := o.list(apply)
		if err != nil {
			return err
		}
		o.lastList = now
		missing = o.stillMissing(missing)
		if wide {
			o.lastWide = now
			// Processes whose number of open files changed since
			// they were read.
			var targets []*procState
			for _, p := range known {
				if seen[p.PID] {
					continue
				}
				if fi, err := os.Stat(o.fs.Path(strconv.Itoa(p.PID), "fd")); err == nil && fi.Size() != p.size {
					targets = append(targets, p)
				}
			}
			missing = o.search(targets, missing, apply)
		}
	}
	// Misses that earlier refreshes searched for in vain wait for the
	// rate-limited full rescan: they do not list or stat processes again.
	if len(retry) > 0 {
		missing = append(missing, o.stillMissing(retry)...)
	}
	if len(missing) > 0 || overflow {
		wait := max(o.cfg.RescanInterval, rescanCostFactor*o.rescanCost)
		known := o.knownProcs()
		if now.Sub(o.lastRescan) >= wait {
			st.Rescan, o.lastRescan = true, now
			start := time.Now()
			results := make([]scanned, 0, len(known))
			for _, p := range known {
				results = append(results, o.scan(p.PID, p, readAll))
			}
			apply(results)
			o.rescanCost = time.Since(start)
			o.noteFound(missing)
		} else if len(missing) > 0 {
			// Look again next time: the rescan is only postponed.
			o.retry = missing[:min(len(missing), maxPending)]
		}
	}

	o.mu.Lock()
	st.Processes, st.Sockets = len(o.procs), len(o.inodes)
	o.stats = st
	o.mu.Unlock()
	return nil
}

// knownProcs returns the processes in the index.
func (o *Owners) knownProcs() []*procState {
	o.mu.RLock()
	defer o.mu.RUnlock()
	out := make([]*procState, 0, len(o.procs))
	for _, p := range o.procs {
		out = append(out, p)
	}
	return out
}

// list reads the process IDs under the FS root, drops the processes that
// vanished, scans the new ones and returns the ones known before.
func (o *Owners) list(apply func([]scanned)) ([]*procState, error) {
	dir, err := os.Open(o.fs.root)
	if err != nil {
		return nil, fmt.Errorf("proc: failed to list processes: %w", err)
	}
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return nil, fmt.Errorf("proc: failed to list processes: %w", err)
	}
	o.gen++
	var todo []int
	var known []*procState
	o.mu.Lock()
	tracked := len(o.procs)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		if p, ok := o.procs[pid]; ok {
			p.gen = o.gen
			known = append(known, p)
			continue
		}
		if tracked >= o.cfg.MaxProcesses {
			continue
		}
		tracked++
		todo = append(todo, pid)
	}
	for pid, p := range o.procs {
		if p.gen != o.gen {
			o.dropLocked(pid, p)
		}
	}
	o.mu.Unlock()
	results := make([]scanned, 0, len(todo))
	for _, pid := range todo {
		results = append(results, o.scan(pid, nil, readNew))
	}
	apply(results)
	return known, nil
}

// stillMissing returns the inodes of missed that are not indexed.
func (o *Owners) stillMissing(missed []uint64) []uint64 {
	o.mu.RLock()
	defer o.mu.RUnlock()
	var out []uint64
	for _, ino := range missed {
		if _, ok := o.inodes[ino]; !ok {
			out = append(out, ino)
		}
	}
	return out
}

// search reads the links of targets' new fd numbers, then, if inodes are
// still missing, all links of the targets with at most smallFDs files (an
// fd number may have been closed and reused for a new socket), and returns
// what is still missing. It remembers the processes where it found some.
func (o *Owners) search(targets []*procState, missing []uint64, apply func([]scanned)) []uint64 {
	if len(targets) == 0 {
		return missing
	}
	for _, mode := range []readMode{readAdded, readAll} {
		results := make([]scanned, 0, len(targets))
		for _, p := range targets {
			if mode == readAll && len(p.fds) > smallFDs {
				continue
			}
			results = append(results, o.scan(p.PID, p, mode))
		}
		apply(results)
		found := missing
		if missing = o.stillMissing(missing); len(missing) < len(found) {
			o.noteFound(found)
		}
		if len(missing) == 0 {
			break
		}
	}
	return missing
}

// smallFDs is the most open files a process may have for search to read
// all its links again; larger ones wait for the rate-limited rescan.
const smallFDs = 1024

// noteFound moves the processes now holding any of inodes to the front of
// recent.
func (o *Owners) noteFound(inodes []uint64) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	for _, ino := range inodes {
		h, ok := o.inodes[ino]
		if !ok {
			continue
		}
		i := slices.Index(o.recent[:], h.pid)
		if i < 0 {
			i = len(o.recent) - 1
		}
		copy(o.recent[1:i+1], o.recent[:i])
		o.recent[0] = h.pid
	}
}

// applyLocked merges one scan into the index and reports whether the
// process's sockets were unreadable.
func (o *Owners) applyLocked(r *scanned) bool {
	if r.gone {
		if p, ok := o.procs[r.pid]; ok {
			o.dropLocked(r.pid, p)
		}
		return false
	}
	p, ok := o.procs[r.pid]
	if !ok {
		p = &procState{}
		o.procs[r.pid] = p
	}
	old := p.fds
	if (r.meta || !ok) && (p.Process == nil || *p.Process != r.proc) {
		np := r.proc
		p.Process = &np
	}
	p.gen, p.fds, p.size = o.gen, r.fds, r.size
	o.reindexLocked(r.pid, old, r.fds)
	return r.denied
}

// reindexLocked updates the index for pid, whose open sockets were old and
// are now cur.
func (o *Owners) reindexLocked(pid int, old, cur []fdInode) {
	if len(old) > 0 {
		keep := make(map[uint64]bool, len(cur))
		for _, f := range cur {
			if f.ino != 0 {
				keep[f.ino] = true
			}
		}
		for _, f := range old {
			if f.ino != 0 && !keep[f.ino] {
				if h, ok := o.inodes[f.ino]; ok && h.pid == pid {
					delete(o.inodes, f.ino)
				}
			}
		}
	}
	for _, f := range cur {
		if f.ino == 0 {
			continue
		}
		h, taken := o.inodes[f.ino]
		switch {
		case !taken && len(o.inodes) < o.cfg.MaxSockets:
			o.inodes[f.ino] = holder{pid: pid}
		case taken && h.pid != pid && !h.shared:
			h.shared = true
			o.inodes[f.ino] = h
		}
	}
}

func (o *Owners) dropLocked(pid int, p *procState) {
	o.reindexLocked(pid, p.fds, nil)
	delete(o.procs, pid)
}

// processGone reports whether err means the process exited while we read
// its files (ENOENT, ESRCH).
func processGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// scan reads pid's fd directory and, for a new process, a full read or one
// whose comm changed (exec, or pid reuse), status and cgroup. prev is what
// the last read found (nil for a new process); with readAdded only fd
// numbers prev does not have are read.
func (o *Owners) scan(pid int, prev *procState, mode readMode) scanned {
	r := scanned{pid: pid, proc: Process{PID: pid}, size: -1}
	base := filepath.Join(o.fs.root, strconv.Itoa(pid))
	fdDir := filepath.Join(base, "fd")
	d, err := os.Open(fdDir)
	if err != nil {
		if processGone(err) {
			r.gone = true
			return r
		}
		r.denied = true // EACCES: another user's process without CAP_DAC_READ_SEARCH
	} else {
		if fi, err := d.Stat(); err == nil {
			r.size = fi.Size()
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil && processGone(err) {
			r.gone = true
			return r
		}
		var known []fdInode
		if prev != nil && mode == readAdded {
			known = prev.fds
		}
		r.fds = make([]fdInode, 0, len(names))
		buf := make([]byte, 0, len(fdDir)+24)
		// A socket's link is "socket:[N]", at most 30 bytes; a longer
		// target (a file's path) is cut and is not a socket.
		var link [32]byte
		for _, n := range names {
			fd, err := strconv.Atoi(n)
			if err != nil {
				continue
			}
			if i, ok := slices.BinarySearchFunc(known, fd, func(f fdInode, fd int) int { return cmp.Compare(f.fd, fd) }); ok {
				r.fds = append(r.fds, known[i])
				continue
			}
			buf = append(append(append(append(buf[:0], fdDir...), '/'), n...), 0)
			ln, err := readlink(buf, link[:])
			if errors.Is(err, fs.ErrPermission) {
				// The ptrace access check failed: the directory was
				// readable (our uid) but the process holds capabilities
				// we lack, and CAP_SYS_PTRACE is missing. Its sockets
				// stay unknown, as for an unreadable directory.
				r.denied = true
				break
			}
			if err != nil {
				continue // fd closed meanwhile, or process gone: skip
			}
			ino, _ := socketInode(link[:ln])
			r.fds = append(r.fds, fdInode{fd, ino})
		}
		slices.SortFunc(r.fds, func(a, b fdInode) int { return cmp.Compare(a.fd, b.fd) })
	}
	if mode == readAdded {
		return r // comm, uid and cgroup are kept
	}
	r.meta = true
	if b, err := o.readSmall(filepath.Join(base, "comm")); err == nil {
		r.proc.Comm = string(bytes.TrimRight(b, "\n"))
	} else if processGone(err) {
		r.gone = true
		return r
	}
	if prev != nil && prev.Comm == r.proc.Comm {
		r.proc.UID, r.proc.Cgroup = prev.UID, prev.Cgroup
		return r
	}
	if b, err := o.readSmall(filepath.Join(base, "status")); err == nil {
		r.proc.UID = statusUID(b)
	}
	if b, err := o.readSmall(filepath.Join(base, "cgroup")); err == nil {
		r.proc.Cgroup = cgroupPath(b)
	}
	return r
}

// readSmall reads the whole of a small file (comm, status, cgroup) into
// o.scratch, which the result aliases until the next call: three syscalls
// and no allocation, where os.ReadFile also stats the file, tries the
// poller and allocates a buffer. A first scan reads three such files for
// every process on the host, and that was a fifth of rstwatch's start-up.
func (o *Owners) readSmall(path string) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	if cap(o.scratch) == 0 {
		o.scratch = make([]byte, 0, 4096)
	}
	b := o.scratch[:0]
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, cap(b))
		}
		n, err := syscall.Read(fd, b[len(b):cap(b)])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			if cap(b) <= 64<<10 { // a huge file is not kept
				o.scratch = b[:0]
			}
			return b, nil
		}
		b = b[:len(b)+n]
	}
}

// socketInode parses a /proc/PID/fd link target of the form "socket:[N]".
func socketInode(target []byte) (uint64, bool) {
	const pre = "socket:["
	if len(target) < len(pre)+2 || string(target[:len(pre)]) != pre || target[len(target)-1] != ']' {
		return 0, false
	}
	return parseDec(target[len(pre):len(target)-1], 64)
}

// statusUID returns the real UID from /proc/PID/status ("Uid:\treal\teffective\tsaved\tfs").
// It allocates nothing: a first scan reads every process's status.
func statusUID(b []byte) uint32 {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		rest = bytes.TrimLeft(rest, " \t")
		if i := bytes.IndexAny(rest, " \t\r\v\f"); i >= 0 {
			rest = rest[:i]
		}
		if v, ok := parseDec(rest, 32); ok {
			return uint32(v)
		}
		return 0
	}
	return 0
}

// cgroupPath picks the cgroup path from /proc/PID/cgroup (lines
// "hierarchy-ID:controllers:path", cgroups(7)): the unified v2 line "0::"
// if present, else the first v1 line whose path is not "/".
func cgroupPath(b []byte) string {
	var v1, v2 []byte
	for line := range bytes.Lines(b) {
		line = bytes.TrimRight(line, "\n")
		id, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		ctrl, path, ok := bytes.Cut(rest, []byte(":"))
		if !ok || len(path) == 0 {
			continue
		}
		switch {
		case string(id) == "0" && len(ctrl) == 0:
			v2 = path
		case v1 == nil && string(path) != "/":
			v1 = path
		}
	}
	// On a hybrid host the v2 line is often "0::/" while v1 controllers
	// carry the real path (e.g. "4:memory:/docker/ID"); prefer the v1 path then.
	if v2 != nil && (string(v2) != "/" || v1 == nil) {
		return string(v2)
	}
	return string(v1)
}
