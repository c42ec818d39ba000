package namespaces

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/netns"
)

// RunDir is where ip-netns(8) keeps named network namespaces.
const RunDir = "/run/netns"

// ErrNoProcess reports a --pid that names no running process.
var ErrNoProcess = errors.New("no such process")

// Target is a network namespace a command looks into: its sockets,
// interfaces and counters come from there, while process attribution still
// reads the host's /proc, so a container's process is named from outside.
type Target struct {
	Path  string // for setns(2): /run/netns/NAME or /proc/PID/ns/net
	PID   int    // a process inside it, if known: its /proc/PID/net are the namespace's files
	Inode uint64 // identifies the namespace (lsns, ip netns identify)
	// Name is a name a person knows the namespace by: a /run/netns name,
	// "container ID" or "pid N (comm)". It is not escaped: it may carry a
	// process name.
	Name string
}

// Resolve checks the namespace at path, or of process pid (exactly one is
// set), by entering it once, so that a wrong path or a missing privilege is
// one clear error before anything starts. Its errors match ErrNoProcess,
// os.ErrNotExist, netns.ErrNotNamespace or os.ErrPermission (entering needs
// CAP_SYS_ADMIN).
func Resolve(fs proc.FS, path string, pid int) (*Target, error) {
	if pid > 0 {
		if _, err := os.Stat(fs.Path(strconv.Itoa(pid))); err != nil {
			return nil, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
		}
		path = fs.Path(strconv.Itoa(pid), "ns", "net")
	}
	t := &Target{Path: path, PID: pid}
	if err := netns.Do(path, func() error { return nil }); err != nil {
		return nil, err
	}
	ino, err := netns.Inode(path)
	if err != nil {
		return nil, err
	}
	t.Inode = ino
	t.Name = t.name(fs)
	return t, nil
}

// name finds a name a person knows the namespace by.
func (t *Target) name(fs proc.FS) string {
	if dir, base := filepath.Split(t.Path); filepath.Clean(dir) == RunDir {
		return base
	}
	if t.PID > 0 {
		return processLabel(fs, t.PID)
	}
	if ents, err := os.ReadDir(RunDir); err == nil {
		for _, e := range ents {
			if ino, err := netns.Inode(filepath.Join(RunDir, e.Name())); err == nil && ino == t.Inode {
				return e.Name()
			}
		}
	}
	return "netns:[" + strconv.FormatUint(t.Inode, 10) + "]"
}

// processLabel names a process's namespace by its container id, else by
// the process.
func processLabel(fs proc.FS, pid int) string {
	if cg, err := fs.Cgroup(pid); err == nil {
		if id := proc.ContainerID(cg); id != "" {
			return "container " + id[:12] // as docker ps shows it
		}
	}
	comm, _ := fs.Comm(pid)
	return fmt.Sprintf("pid %d (%s)", pid, comm)
}

// FS returns fs with its network files (counters, /proc/net/tcp) taken from
// the namespace when a process in it is known; nil t means fs itself.
func (t *Target) FS(fs proc.FS) proc.FS {
	if t != nil && t.PID > 0 {
		return fs.NetOf(t.PID)
	}
	return fs
}

// Counters returns a reader of the namespace's TCP counters: from
// /proc/PID/net when a process in it is known, else read by a thread
// inside it. A nil t reads this process's namespace.
func (t *Target) Counters(fs proc.FS) func() (proc.Counters, error) {
	if t == nil || t.PID > 0 {
		return t.FS(fs).Counters
	}
	return func() (c proc.Counters, err error) {
		err = netns.Do(t.Path, func() error {
			// /proc/thread-self/net follows the thread that reads it,
			// which is now inside the namespace (KERNEL-NOTES fact 18).
			self, err := proc.NewFS(fs.Path("thread-self"))
			if err != nil {
				return err
			}
			c, err = self.Counters()
			return err
		})
		return c, err
	}
}

// Discover lists every network namespace on the host: this process's own
// (named "host"), the named ones under /run/netns and those of running
// processes, once each (by inode). known holds inodes to skip; Discover
// adds the ones it returns.
func Discover(fs proc.FS, known map[uint64]bool) []*Target {
	var out []*Target
	add := func(t *Target) {
		ino, err := netns.Inode(t.Path)
		if err != nil || known[ino] {
			return
		}
		known[ino] = true
		t.Inode = ino
		if t.Name == "" {
			t.Name = t.name(fs)
		}
		out = append(out, t)
	}
	self := os.Getpid()
	add(&Target{Path: fs.Path(strconv.Itoa(self), "ns", "net"), PID: self, Name: "host"})
	if ents, err := os.ReadDir(RunDir); err == nil {
		for _, e := range ents {
			add(&Target{Path: filepath.Join(RunDir, e.Name()), Name: e.Name()})
		}
	}
	if ents, err := os.ReadDir(fs.Root()); err == nil {
		pids := make([]int, 0, len(ents))
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil {
				pids = append(pids, pid)
			}
		}
		sort.Ints(pids)
		for _, pid := range pids {
			add(&Target{Path: fs.Path(strconv.Itoa(pid), "ns", "net"), PID: pid})
		}
	}
	return out
}

// Sysctls reads settings of the namespace by their sysctl(8) names
// ("net.core.somaxconn"), as sysctl would inside it: /proc/sys/net follows
// the network namespace of the thread that opens it, so a thread enters
// the namespace first. A nil t reads this process's. Settings that cannot
// be read are left out.
func (t *Target) Sysctls(fs proc.FS, names []string) map[string]string {
	out := map[string]string{}
	read := func() error {
		for _, name := range names {
			b, err := os.ReadFile(fs.Path(append([]string{"sys"}, strings.Split(name, ".")...)...))
			if err == nil {
				out[name] = strings.TrimSpace(string(b))
			}
		}
		return nil
	}
	if t == nil {
		_ = read()
	} else {
		_ = netns.Do(t.Path, read)
	}
	return out
}
