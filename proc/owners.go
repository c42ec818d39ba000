package proc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
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
	// RescanInterval is the least time between full rescans of every known
	// process's fd directory, which a Lookup miss requests (default 1s).
	RescanInterval time.Duration
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
	return o
}

// Owners maps socket inodes to the processes holding them, as `ss -p` does,
// by reading the /proc/PID/fd/N -> "socket:[INODE]" symlinks. The index is
// kept between calls to Refresh and updated incrementally: new processes are
// scanned when they appear, vanished ones are dropped, and the fd
// directories of known processes are read again only after a Lookup has
// missed (at most once per RescanInterval). A socket shared by several
// processes (inherited across fork) is attributed to one of them.
//
// Lookup may run concurrently with Refresh.
type Owners struct {
	fs  FS
	cfg OwnersConfig
	now func() time.Time

	refreshMu  sync.Mutex // serialises Refresh
	gen        uint64
	lastRescan time.Time
	missed     atomic.Bool

	mu     sync.RWMutex
	procs  map[int]*procState
	inodes map[uint64]int // inode -> pid

	stats OwnersStats
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
	Process
	gen    uint64
	inodes []uint64
}

// NewOwners returns an empty index over the processes of p. Call Refresh to
// fill it.
func NewOwners(p FS, cfg *OwnersConfig) *Owners {
	return &Owners{
		fs:     p,
		cfg:    cfg.withDefaults(),
		now:    time.Now,
		procs:  make(map[int]*procState),
		inodes: make(map[uint64]int),
	}
}

// Lookup returns the process holding the socket with this inode. A miss
// (for a non-zero inode) asks the next Refresh to re-read all fd
// directories. It does not allocate.
func (o *Owners) Lookup(inode uint64) (Process, bool) {
	p, ok := o.get(inode)
	if !ok && inode != 0 {
		o.missed.Store(true)
	}
	return p, ok
}

// get is Lookup without requesting a rescan on a miss.
func (o *Owners) get(inode uint64) (Process, bool) {
	o.mu.RLock()
	pid, ok := o.inodes[inode]
	var p *procState
	if ok {
		p = o.procs[pid]
	}
	o.mu.RUnlock()
	if p == nil {
		return Process{}, false
	}
	return p.Process, true
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
	inodes []uint64
	gone   bool // exited during the scan
	denied bool
}

// Refresh lists the processes under the FS root, scans the new ones, drops
// the vanished ones and, if a Lookup missed since the last rescan and
// RescanInterval has passed, re-reads every process. Processes that exit
// mid-scan and fd directories it may not read are skipped, not errors.
func (o *Owners) Refresh() error {
	o.refreshMu.Lock()
	defer o.refreshMu.Unlock()

	dir, err := os.Open(o.fs.root)
	if err != nil {
		return fmt.Errorf("proc: failed to list processes: %w", err)
	}
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return fmt.Errorf("proc: failed to list processes: %w", err)
	}

	o.gen++
	now := o.now()
	rescan := o.missed.Load() && now.Sub(o.lastRescan) >= o.cfg.RescanInterval
	if rescan {
		o.missed.Store(false)
		o.lastRescan = now
	}

	var todo []int
	prev := make(map[int]Process)
	o.mu.Lock()
	tracked := len(o.procs)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		if p, ok := o.procs[pid]; ok {
			p.gen = o.gen
			if rescan {
				todo = append(todo, pid)
				prev[pid] = p.Process
			}
			continue
		}
		if tracked >= o.cfg.MaxProcesses {
			continue
		}
		tracked++
		todo = append(todo, pid)
	}
	o.mu.Unlock()

	// Read the files without holding the lock so Lookups keep going.
	results := make([]scanned, 0, len(todo))
	for _, pid := range todo {
		p, known := prev[pid]
		results = append(results, o.scan(pid, p, known))
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	for pid, p := range o.procs {
		if p.gen != o.gen {
			o.dropLocked(pid, p)
		}
	}
	st := OwnersStats{Scanned: len(results), Rescan: rescan}
	for i := range results {
		r := &results[i]
		if r.gone {
			if p, ok := o.procs[r.pid]; ok {
				o.dropLocked(r.pid, p)
			}
			continue
		}
		if r.denied {
			st.Unreadable++
		}
		p, ok := o.procs[r.pid]
		if !ok {
			p = &procState{}
			o.procs[r.pid] = p
		} else {
			o.unindexLocked(r.pid, p)
		}
		p.Process, p.gen, p.inodes = r.proc, o.gen, r.inodes
		for _, ino := range p.inodes {
			if _, taken := o.inodes[ino]; !taken && len(o.inodes) < o.cfg.MaxSockets {
				o.inodes[ino] = r.pid
			}
		}
	}
	st.Processes, st.Sockets = len(o.procs), len(o.inodes)
	o.stats = st
	return nil
}

func (o *Owners) dropLocked(pid int, p *procState) {
	o.unindexLocked(pid, p)
	delete(o.procs, pid)
}

func (o *Owners) unindexLocked(pid int, p *procState) {
	for _, ino := range p.inodes {
		if o.inodes[ino] == pid {
			delete(o.inodes, ino)
		}
	}
}

// processGone reports whether err means the process exited while we read
// its files (ENOENT, ESRCH).
func processGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// scan reads the fd directory and /proc/PID/comm and, for a new process or
// one whose comm changed (exec, or pid reuse), status and cgroup.
func (o *Owners) scan(pid int, prev Process, known bool) scanned {
	r := scanned{pid: pid, proc: Process{PID: pid}}
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
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil && processGone(err) {
			r.gone = true
			return r
		}
		buf := make([]byte, 0, len(fdDir)+16)
		for _, n := range names {
			buf = append(append(append(buf[:0], fdDir...), '/'), n...)
			target, err := os.Readlink(string(buf))
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
			if ino, ok := socketInode(target); ok {
				r.inodes = append(r.inodes, ino)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(base, "comm")); err == nil {
		r.proc.Comm = string(bytes.TrimRight(b, "\n"))
	} else if processGone(err) {
		r.gone = true
		return r
	}
	if known && prev.Comm == r.proc.Comm {
		r.proc.UID, r.proc.Cgroup = prev.UID, prev.Cgroup
		return r
	}
	if b, err := os.ReadFile(filepath.Join(base, "status")); err == nil {
		r.proc.UID = statusUID(b)
	}
	if b, err := os.ReadFile(filepath.Join(base, "cgroup")); err == nil {
		r.proc.Cgroup = cgroupPath(b)
	}
	return r
}

// socketInode parses a /proc/PID/fd link target of the form "socket:[N]".
func socketInode(target string) (uint64, bool) {
	const pre = "socket:["
	if len(target) < len(pre)+2 || target[:len(pre)] != pre || target[len(target)-1] != ']' {
		return 0, false
	}
	return parseDec([]byte(target[len(pre):len(target)-1]), 64)
}

// statusUID returns the real UID from /proc/PID/status ("Uid:\treal\teffective\tsaved\tfs").
func statusUID(b []byte) uint32 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("Uid:")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				if v, ok := parseDec(f[0], 32); ok {
					return uint32(v)
				}
			}
			return 0
		}
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
