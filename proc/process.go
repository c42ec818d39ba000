package proc

import (
	"bytes"
	"os"
	"strconv"
)

// Comm returns the command name of process pid (ROOT/PID/comm), as the
// kernel keeps it: up to 15 bytes, unescaped. Callers escape it before
// printing.
func (p FS) Comm(pid int) (string, error) {
	b, err := os.ReadFile(p.Path(strconv.Itoa(pid), "comm"))
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(b, []byte("\n"))), nil
}

// Cgroup returns the cgroup path of process pid (ROOT/PID/cgroup), chosen
// as Process.Cgroup is: the unified (v2) path, or on a hybrid host the first
// v1 path that is not "/".
func (p FS) Cgroup(pid int) (string, error) {
	b, err := os.ReadFile(p.Path(strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", err
	}
	return cgroupPath(b), nil
}
