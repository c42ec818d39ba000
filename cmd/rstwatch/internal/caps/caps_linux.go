package caps

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sets are the Capability sets of the calling thread
// (capget(2)); every thread of rstwatch has the same ones, since only
// Drop changes them and it changes all threads at once.
type Sets struct {
	Effective, Permitted, Inheritable Set
}

// Read returns the calling thread's Capability sets.
func Read() (Sets, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData // version 3: two 32-bit halves
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return Sets{}, os.NewSyscallError("capget", err)
	}
	join := func(lo, hi uint32) Set { return Set(uint64(hi)<<32 | uint64(lo)) }
	return Sets{
		Effective:   join(data[0].Effective, data[1].Effective),
		Permitted:   join(data[0].Permitted, data[1].Permitted),
		Inheritable: join(data[0].Inheritable, data[1].Inheritable),
	}, nil
}

// Effective returns the effective set, or none if it cannot be
// read (for notes only: a failure just makes a note name every Capability).
func Effective() Set {
	c, err := Read()
	if err != nil {
		return 0
	}
	return c.Effective
}

// Drop lowers the capabilities of every thread of rstwatch to
// the ones in keep that it has now, for good: the effective and permitted
// sets become keep ∩ permitted and the inheritable set empty (which also
// empties the ambient set, capabilities(7)), so neither rstwatch nor
// anything it could run can raise them again. The bounding set is left
// alone: it only limits what execve(2) can grant, and rstwatch runs
// nothing. PR_SET_NO_NEW_PRIVS is not set either, for the same reason, and
// because it would stop a setuid helper the operator wraps around
// rstwatch, not rstwatch itself.
//
// Capabilities belong to threads, and the Go runtime runs several, so the
// sets are changed on all of them at once with syscall.AllThreadsSyscall.
// That is only possible in a CGO_ENABLED=0 build (rstwatch's only kind);
// in a cgo build the error matches syscall.ENOTSUP and nothing changes.
func Drop(keep ...Capability) error {
	cur, err := Read()
	if err != nil {
		return err
	}
	want := Of(keep...) & cur.Permitted
	if cur.Effective == want && cur.Permitted == want && cur.Inheritable == 0 {
		return nil
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3} // Pid 0: each calling thread
	data := [2]unix.CapUserData{
		{Effective: uint32(want), Permitted: uint32(want)},
		{Effective: uint32(want >> 32), Permitted: uint32(want >> 32)},
	}
	_, _, errno := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	if errno != 0 {
		return fmt.Errorf("drop capabilities to %v: %w", want, os.NewSyscallError("capset", errno))
	}
	return nil
}

// ReadStatus reads the Cap* lines (CapInh, CapPrm, CapEff, CapBnd, CapAmb)
// of a /proc/PID/status file: another process's capabilities.
func ReadStatus(path string) (map[string]Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make(map[string]Set)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasPrefix(k, "Cap") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", path, k, err)
		}
		out[k] = Set(n)
	}
	return out, sc.Err()
}
