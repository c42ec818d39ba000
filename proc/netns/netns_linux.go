package netns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

func do(path string, fn func() error) error {
	target, err := open(path)
	if err != nil {
		return err
	}
	defer unix.Close(target)

	// Run on a fresh goroutine so the caller's thread is never switched: if
	// switching back fails, the thread is left locked and the runtime
	// destroys it when the goroutine exits (KERNEL-NOTES fact 18).
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: open own namespace: %w", err)
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			if err == unix.EINVAL {
				// An nsfs file of another kind on a kernel without
				// NS_GET_NSTYPE.
				errc <- fmt.Errorf("netns: %s: %w", path, ErrNotNamespace)
				return
			}
			errc <- &EnterError{Path: path, Err: os.NewSyscallError("setns", err)}
			return
		}
		ferr := fn()
		if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
			// Keep the thread locked: it must never run other goroutines.
			errc <- fmt.Errorf("netns: return from %s: %w", path, os.NewSyscallError("setns", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// open opens path and checks that it is a network namespace.
func open(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("netns: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	// A namespace file lives on nsfs: anything else (/etc/passwd, a
	// directory) is not one, whatever setns would say about it.
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil || sfs.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return -1, fmt.Errorf("netns: %s: %w", path, ErrNotNamespace)
	}
	// NS_GET_NSTYPE (since Linux 4.11) tells the kind of namespace.
	const nsGetNSType = 0xb703
	typ, err := unix.IoctlRetInt(fd, nsGetNSType)
	if err == nil && typ != unix.CLONE_NEWNET {
		unix.Close(fd)
		return -1, fmt.Errorf("netns: %s: %w", path, ErrNotNamespace)
	}
	if err != nil && err != unix.ENOTTY && err != unix.EINVAL {
		unix.Close(fd)
		return -1, fmt.Errorf("netns: %s: %w", path, ErrNotNamespace)
	}
	return fd, nil
}

// Inode returns the inode number that identifies the network namespace at
// path, as ip-netns(8) and lsns(8) print it.
func Inode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("netns: %w", &os.PathError{Op: "stat", Path: path, Err: err})
	}
	return st.Ino, nil
}
