package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/namespaces"
	"github.com/rstwatch/rstwatch/proc/netns"
)

// namespaceFlags select another network namespace (watch, diagnose, stats,
// sockets). Entering one needs CAP_SYS_ADMIN.
func namespaceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagNetns, Usage: "look into the network namespace at `PATH` (/run/netns/NAME, /proc/PID/ns/net); needs CAP_SYS_ADMIN"},
		&cli.IntFlag{Name: flagPid, Usage: "look into the network namespace of process `PID` (a container's process, say); needs CAP_SYS_ADMIN"},
	}
}

// resolveNamespace reads --netns and --pid; nil means this process's own
// namespace. Every way the namespace can be wrong is a usage error (exit
// 2) that says which.
func resolveNamespace(c *cli.Context, fs proc.FS) (*namespaces.Target, error) {
	path, pid := c.String(flagNetns), c.Int(flagPid)
	switch {
	case path != "" && pid != 0:
		return nil, usagef("--%s and --%s both name a namespace: give one", flagNetns, flagPid)
	case pid < 0:
		return nil, usagef("invalid --%s %d", flagPid, pid)
	case path == "" && pid == 0:
		return nil, nil
	}
	t, err := namespaces.Resolve(fs, path, pid)
	if err == nil {
		return t, nil
	}
	if pid > 0 {
		path = fmt.Sprintf("/proc/%d/ns/net", pid)
	}
	switch {
	case errors.Is(err, namespaces.ErrNoProcess):
		return nil, usagef("--%s %d: no such process", flagPid, pid)
	case errors.Is(err, os.ErrPermission):
		return nil, namespacePrivilegeError(path, err)
	case errors.Is(err, os.ErrNotExist):
		return nil, usagef("no network namespace at %s", path)
	case errors.Is(err, netns.ErrNotNamespace):
		return nil, usagef("%s is not a network namespace", path)
	}
	return nil, fmt.Errorf("network namespace %s: %w", path, err)
}
