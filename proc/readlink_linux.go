//go:build linux

package proc

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readlink reads the target of the symbolic link at path, which ends with
// a NUL byte, into buf and returns its length (truncated to len(buf)). It
// allocates nothing, where os.Readlink allocates the path, a buffer and
// the result: a first scan reads the link of every open file on the host.
func readlink(path, buf []byte) (int, error) {
	fdcwd := unix.AT_FDCWD
	for {
		n, _, e := syscall.Syscall6(unix.SYS_READLINKAT, uintptr(fdcwd), uintptr(unsafe.Pointer(&path[0])),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
		switch e {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		}
		return 0, e
	}
}
