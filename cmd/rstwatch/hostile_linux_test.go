package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/caps"
)

// Faults found by attacking rstwatch as a hostile local user would (issue
// 1/7): each test fails on the code before the fix.

// TestWriteRefusesSymlink: -w does not write through a symbolic link
// planted where the file is to be created (rstwatch runs as root).
func TestWriteRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "out.pcapng")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, exec.Command(binary, "-r", "../../testdata/savefile/writer.pcapng", "-w", link))
	assertOneLineError(t, stdout, stderr, code, exitUsage, "is a symbolic link")
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the link's target was overwritten: %q", b)
	}
}

// TestWriteNotOverRead: -r x -w x is a usage error and leaves x intact.
func TestWriteNotOverRead(t *testing.T) {
	orig, err := os.ReadFile("../../testdata/savefile/writer.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	x := filepath.Join(dir, "x.pcapng")
	if err := os.WriteFile(x, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{x, filepath.Join(dir, ".", "x.pcapng")} {
		stdout, stderr, code := run(t, exec.Command(binary, "-r", x, "-w", w))
		assertOneLineError(t, stdout, stderr, code, exitUsage, "is also the file being read")
	}
	if b, _ := os.ReadFile(x); !bytes.Equal(b, orig) {
		t.Errorf("the input file changed: %d bytes, want %d", len(b), len(orig))
	}
}

// TestWriteCreatesMode0644: the file is created 0644 whatever the umask
// allows beyond that.
func TestWriteCreatesMode0644(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.pcapng")
	if _, stderr, code := run(t, exec.Command(binary, "-r", "../../testdata/savefile/writer.pcapng", "-w", out)); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o644 != 0 {
		t.Errorf("mode %v, want at most 0644", perm)
	}
}

// TestNotANamespace: any file that is not a network namespace is exit 2
// with "not a network namespace", a regular file as well as another kind
// of namespace.
func TestNotANamespace(t *testing.T) {
	for _, path := range []string{"/etc/passwd", "/proc/self/ns/mnt", "/proc/self/ns/uts"} {
		for _, cmd := range []string{"watch", "stats", "sockets"} {
			stdout, stderr, code := run(t, exec.Command(binary, cmd, "--netns", path))
			assertOneLineError(t, stdout, stderr, code, exitUsage, path+" is not a network namespace")
		}
	}
}

// TestIntegrationAllNetnsUnprivileged: --all-netns without CAP_SYS_ADMIN is
// one line naming CAP_SYS_ADMIN, exit 2 (it was 19 lines about CAP_NET_RAW,
// exit 1).
func TestIntegrationAllNetnsUnprivileged(t *testing.T) {
	const setpriv = "/usr/bin/setpriv"
	if _, err := os.Stat(setpriv); err != nil {
		t.Fatalf("setpriv (util-linux) is needed: %v", err)
	}
	// CAP_NET_RAW alone: the capture socket could open, entering a
	// namespace cannot.
	cmd := exec.Command(setpriv, "--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw",
		binary, "--all-netns", "--duration", "1s")
	stdout, stderr, code := run(t, cmd)
	assertOneLineError(t, stdout, stderr, code, exitUsage, "needs CAP_SYS_ADMIN")
}

// TestIntegrationStatsDropsCapabilities: stats keeps no capability once it
// runs (it kept every one, CapEff 0x1fffeffffff).
func TestIntegrationStatsDropsCapabilities(t *testing.T) {
	w := &watcher{cmd: exec.Command(binary, "stats", "--interval", "100ms", "-c", "30"), done: make(chan struct{})}
	w.cmd.Stdout, w.cmd.Stderr = &w.stdout, &w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.cmd.Wait(); close(w.done) }()
	t.Cleanup(func() { w.cmd.Process.Kill(); <-w.done })
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(w.stdout.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatalf("stats printed nothing: %q", w.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, err := caps.ReadStatus(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if st["CapEff"] != 0 || st["CapPrm"] != 0 {
		t.Errorf("stats runs with CapEff %v, CapPrm %v; want none", st["CapEff"], st["CapPrm"])
	}
}
