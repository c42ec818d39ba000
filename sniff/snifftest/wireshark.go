package snifftest

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// Wireshark runs one of Wireshark's tools (tshark, capinfos, mergecap) and
// returns its standard output. Anything on standard error but the notice
// about running as root fails the test: a warning means the tool did not
// read the file cleanly.
func Wireshark(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var warnings []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if line != "" && !strings.HasPrefix(line, "Running as user ") {
			warnings = append(warnings, line)
		}
	}
	if err != nil || len(warnings) > 0 {
		tb.Fatalf("failed to run %s %s: %v: %s", name, strings.Join(args, " "), err, strings.Join(warnings, "\n"))
	}
	return stdout.String()
}

// LookTShark returns the path of tshark, or skips the test: without it
// there is no oracle to check against.
func LookTShark(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("tshark")
	if err != nil {
		tb.Skip("skipping, tshark not installed (apt-get install tshark): no oracle to check against")
	}
	return path
}
