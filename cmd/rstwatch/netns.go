package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/netns"
)

// runNetns is where ip-netns(8) keeps named network namespaces.
const runNetns = "/run/netns"

// nsTarget is a network namespace a command looks into: its sockets,
// interfaces and counters come from there, while process attribution still
// reads the host's /proc, so a container's process is named from outside.
type nsTarget struct {
	path  string // for setns(2): /run/netns/NAME or /proc/PID/ns/net
	pid   int    // a process inside it, if known: its /proc/PID/net are the namespace's files
	inode uint64 // identifies the namespace (lsns, ip netns identify)
	name  string // a /run/netns name, a container id, or "pid N (comm)"
}

// namespaceFlags select another network namespace (watch, diagnose, stats,
// sockets). Entering one needs CAP_SYS_ADMIN.
func namespaceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagNetns, Usage: "look into the network namespace at `PATH` (/run/netns/NAME, /proc/PID/ns/net); needs CAP_SYS_ADMIN"},
		&cli.IntFlag{Name: flagPid, Usage: "look into the network namespace of process `PID` (a container's process, say); needs CAP_SYS_ADMIN"},
	}
}

// resolveNamespace reads --netns and --pid; nil means this process's own
// namespace.
func resolveNamespace(c *cli.Context) (*nsTarget, error) {
	path, pid := c.String(flagNetns), c.Int(flagPid)
	switch {
	case path != "" && pid != 0:
		return nil, usagef("--%s and --%s both name a namespace: give one", flagNetns, flagPid)
	case pid < 0:
		return nil, usagef("invalid --%s %d", flagPid, pid)
	case pid > 0:
		path = fmt.Sprintf("/proc/%d/ns/net", pid)
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return nil, usagef("--%s %d: no such process", flagPid, pid)
		}
	case path == "":
		return nil, nil
	}
	t := &nsTarget{path: path, pid: pid}
	if err := t.check(); err != nil {
		return nil, err
	}
	return t, nil
}

// check enters the namespace once, so that a wrong path or a missing
// privilege is one clear error before anything starts.
func (t *nsTarget) check() error {
	err := netns.Do(t.path, func() error { return nil })
	switch {
	case err == nil:
	case errors.Is(err, os.ErrPermission):
		return usageError{fmt.Errorf("entering the network namespace %s needs CAP_SYS_ADMIN (run as root): %w", t.path, err)}
	case errors.Is(err, os.ErrNotExist):
		return usagef("no network namespace at %s", t.path)
	case errors.Is(err, netns.ErrNotNamespace):
		return usagef("%s is not a network namespace", t.path)
	default:
		return fmt.Errorf("network namespace %s: %w", t.path, err)
	}
	ino, err := netns.Inode(t.path)
	if err != nil {
		return err
	}
	t.inode = ino
	if t.name == "" {
		t.name = nameNamespace(t)
	}
	return nil
}

// nameNamespace finds a name a person knows the namespace by.
func nameNamespace(t *nsTarget) string {
	if dir, base := filepath.Split(t.path); filepath.Clean(dir) == runNetns {
		return base
	}
	if t.pid > 0 {
		return processLabel(t.pid)
	}
	if ents, err := os.ReadDir(runNetns); err == nil {
		for _, e := range ents {
			if ino, err := netns.Inode(filepath.Join(runNetns, e.Name())); err == nil && ino == t.inode {
				return e.Name()
			}
		}
	}
	return "netns:[" + strconv.FormatUint(t.inode, 10) + "]"
}

// processLabel names a process's namespace by its container id, else by
// the process.
func processLabel(pid int) string {
	if f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if _, path, ok := strings.Cut(sc.Text(), "::"); ok {
				if id := proc.ContainerID(path); id != "" {
					if len(id) > 12 {
						id = id[:12] // as docker ps shows it
					}
					return "container " + id
				}
			}
		}
	}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return fmt.Sprintf("pid %d (%s)", pid, safe.Text(strings.TrimSpace(string(comm))))
}

// counters returns the namespace's TCP counters: from /proc/PID/net when a
// process in it is known, else read by a thread inside it.
func (t *nsTarget) counters(fs proc.FS) func() (proc.Counters, error) {
	if t == nil {
		return fs.Counters
	}
	if t.pid > 0 {
		return fs.NetOf(t.pid).Counters
	}
	return func() (c proc.Counters, err error) {
		err = netns.Do(t.path, func() error {
			// /proc/thread-self/net follows the thread that reads it,
			// which is now inside the namespace (KERNEL-NOTES fact 18).
			self, err := proc.NewFS("/proc/thread-self")
			if err != nil {
				return err
			}
			c, err = self.Counters()
			return err
		})
		return c, err
	}
}

// discoverNamespaces lists every network namespace on the host: this
// process's own, the named ones under /run/netns and those of running
// processes, once each (by inode). known holds inodes to skip.
func discoverNamespaces(known map[uint64]bool) []*nsTarget {
	var out []*nsTarget
	add := func(t *nsTarget) {
		ino, err := netns.Inode(t.path)
		if err != nil || known[ino] {
			return
		}
		known[ino] = true
		t.inode = ino
		if t.name == "" {
			t.name = nameNamespace(t)
		}
		out = append(out, t)
	}
	add(&nsTarget{path: "/proc/self/ns/net", pid: os.Getpid(), name: "host"})
	if ents, err := os.ReadDir(runNetns); err == nil {
		for _, e := range ents {
			add(&nsTarget{path: filepath.Join(runNetns, e.Name()), name: e.Name()})
		}
	}
	if ents, err := os.ReadDir("/proc"); err == nil {
		pids := make([]int, 0, len(ents))
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil {
				pids = append(pids, pid)
			}
		}
		sort.Ints(pids)
		for _, pid := range pids {
			add(&nsTarget{path: fmt.Sprintf("/proc/%d/ns/net", pid), pid: pid})
		}
	}
	return out
}
