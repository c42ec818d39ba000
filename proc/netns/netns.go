package netns

import (
	"errors"
)

// ErrNotNamespace is returned when a path does not name a network namespace.
var ErrNotNamespace = errors.New("not a network namespace")

// EnterError reports a namespace that could not be entered: setns(2)
// failed. Without CAP_SYS_ADMIN it matches os.ErrPermission.
type EnterError struct {
	Path string
	Err  error
}

func (e *EnterError) Error() string { return "netns: enter " + e.Path + ": " + e.Err.Error() }
func (e *EnterError) Unwrap() error { return e.Err }

// Do runs fn on an OS thread that has entered the network namespace named by
// path (for example /run/netns/NAME or /proc/PID/ns/net). Sockets and netlink
// connections created by fn belong to that namespace. An empty path runs fn
// directly, in the caller's namespace.
//
// fn must not start goroutines that expect to run in the namespace: only the
// calling thread is switched.
func Do(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	return do(path, fn)
}
