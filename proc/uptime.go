package proc

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
)

// Uptime reads ROOT/uptime: the seconds since the system booted.
func (p FS) Uptime() (float64, error) {
	path := p.Path("uptime")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("proc: failed to open %s: %w", path, err)
	}
	up, err := ParseUptime(b)
	if err != nil {
		return 0, fmt.Errorf("proc: failed to parse %s: %w", path, err)
	}
	return up, nil
}

// ParseUptime parses the contents of /proc/uptime, "350735.47 234388.90\n"
// (proc(5): the seconds since boot, then the seconds all CPUs spent idle),
// and returns the first figure.
func ParseUptime(b []byte) (float64, error) {
	fields := bytes.Fields(b)
	if len(fields) == 0 {
		return 0, fmt.Errorf("empty uptime")
	}
	up, err := strconv.ParseFloat(string(fields[0]), 64)
	if err != nil || up < 0 || math.IsInf(up, 0) || math.IsNaN(up) {
		return 0, fmt.Errorf("bad uptime %q", fields[0])
	}
	return up, nil
}
