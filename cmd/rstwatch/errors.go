package main

import (
	"errors"
	"fmt"
	"os"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure
	exitUsage   = 2 // bad usage or missing privilege
	exitAlert   = 3 // a finding or an alert rule fired (diagnose, stats)
)

// usageError marks an error as the user's to fix: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// alertError ends a command that found something abnormal: exit 3. Its
// message, if any, has already been printed.
type alertError struct{}

func (alertError) Error() string { return "" }

func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, alertError{}):
		return exitAlert
	case errors.Is(err, os.ErrPermission):
		return exitUsage
	}
	return exitFailure
}

// privilegeError explains a capture that the kernel refused.
func privilegeError(err error) error {
	// Quote the failing syscall only ("socket: operation not permitted"),
	// not the layers of net.OpError around it.
	var se *os.SyscallError
	if errors.As(err, &se) {
		err = se
	}
	return usageError{fmt.Errorf("capturing packets needs CAP_NET_RAW: run as root or grant it with `setcap cap_net_raw+ep rstwatch` (%v)", err)}
}

// namespacePrivilegeError explains a namespace that could not be entered
// for lack of CAP_SYS_ADMIN.
func namespacePrivilegeError(path string, err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		err = se
	}
	return usageError{fmt.Errorf("entering the network namespace %s needs CAP_SYS_ADMIN: run as root (%v)", path, err)}
}
