package proc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// DefaultRoot is where procfs is mounted unless NewFS is told otherwise.
const DefaultRoot = "/proc"

// FS is a procfs mount, or a copy of one (a fixture tree), like ss's
// PROC_ROOT. The zero value is not usable; call NewFS.
type FS struct {
	root string // e.g. /proc
	net  string // directory holding tcp, tcp6, snmp, netstat; root/net by default
}

// NewFS returns an FS rooted at root; "" means DefaultRoot. It fails if root
// is not a directory.
func NewFS(root string) (FS, error) {
	if root == "" {
		root = DefaultRoot
	}
	fi, err := os.Stat(root)
	if err != nil {
		return FS{}, fmt.Errorf("proc: failed to open %s: %w", root, err)
	}
	if !fi.IsDir() {
		return FS{}, fmt.Errorf("proc: %s is not a directory", root)
	}
	return FS{root: root, net: filepath.Join(root, "net")}, nil
}

// Root returns the directory the FS reads.
func (p FS) Root() string { return p.root }

// Path joins elem to the FS's root.
func (p FS) Path(elem ...string) string {
	return filepath.Join(append([]string{p.root}, elem...)...)
}

// NetOf returns a copy of p whose network files (tcp, tcp6, snmp, netstat)
// are those of the network namespace of process pid, read from
// ROOT/PID/net. Process files still come from ROOT. /proc/net itself follows
// the namespace of the process's main thread (proc(5)).
func (p FS) NetOf(pid int) FS {
	p.net = filepath.Join(p.root, strconv.Itoa(pid), "net")
	return p
}

// NetTCP parses ROOT/net/tcp.
func (p FS) NetTCP() ([]Socket, error) { return p.appendNetFile(nil, "tcp") }

// NetTCP6 parses ROOT/net/tcp6.
func (p FS) NetTCP6() ([]Socket, error) { return p.appendNetFile(nil, "tcp6") }

// Dump returns the TCP sockets of one address family (2 for AF_INET, 10 for
// AF_INET6, Linux's numbers) whose state is in states, read from
// /proc/net/tcp or /proc/net/tcp6. It is the fallback for (*Diag).Dump when
// sock_diag is not available and carries no Cookie, IfIndex, CgroupID or
// listener backlog. A missing tcp6 file (IPv6 disabled) yields no sockets.
func (p FS) Dump(family uint8, states StateMask) ([]Socket, error) {
	return p.AppendDump(nil, family, states)
}

// AppendDump is like Dump but appends to dst.
func (p FS) AppendDump(dst []Socket, family uint8, states StateMask) ([]Socket, error) {
	var name string
	switch family {
	case afInet:
		name = "tcp"
	case afInet6:
		name = "tcp6"
	default:
		return dst, fmt.Errorf("proc: unsupported address family %d", family)
	}
	n := len(dst)
	dst, err := p.appendNetFile(dst, name)
	if err != nil {
		if family == afInet6 && errors.Is(err, fs.ErrNotExist) {
			return dst, nil
		}
		return dst, err
	}
	out := dst[:n]
	for _, s := range dst[n:] {
		if states.Has(s.State) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (p FS) appendNetFile(dst []Socket, name string) ([]Socket, error) {
	path := filepath.Join(p.net, name)
	f, err := os.Open(path)
	if err != nil {
		return dst, fmt.Errorf("proc: failed to open %s: %w", path, err)
	}
	defer f.Close()
	dst, err = AppendNetTCP(dst, f)
	if err != nil {
		return dst, fmt.Errorf("proc: failed to parse %s: %w", path, err)
	}
	return dst, nil
}

// Counters reads ROOT/net/snmp and ROOT/net/netstat into one Counters.
func (p FS) Counters() (Counters, error) {
	c := make(Counters, 512)
	for _, name := range []string{"snmp", "netstat"} {
		path := filepath.Join(p.net, name)
		f, err := os.Open(path)
		if err != nil {
			return c, fmt.Errorf("proc: failed to open %s: %w", path, err)
		}
		_, err = ParseSNMP(f, c)
		f.Close()
		if err != nil {
			return c, fmt.Errorf("proc: failed to parse %s: %w", path, err)
		}
	}
	return c, nil
}
