package main

import (
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// TestIntegrationEmptyRoot proves that rstwatch needs no file but /proc
// and /sys at run time (no /etc, no libc, no shell): it runs watch chrooted
// into a directory holding only the binary and those two mounts, and
// checks that resets in its network namespace are captured and attributed
// from the kernel's state: a refused connect (cause refused, sent by this
// host) and a linger-0 abort whose sender is named from /proc/PID/fd (this
// test process).
//
// The mounts are made in a private mount namespace (unshare --mount inside
// ip netns exec's own), so they vanish with the process; the shell and
// chroot(1) run outside the new root.
func TestIntegrationEmptyRoot(t *testing.T) {
	ns := netnstest.New(t)
	root := t.TempDir()
	copyFile(t, binary, filepath.Join(root, "rstwatch"), 0o755)
	for _, d := range []string{"proc", "sys"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o555); err != nil {
			t.Fatalf("failed to make %s: %v", d, err)
		}
	}
	const script = `set -e
mount -t proc proc "$1/proc"
mount -t sysfs sysfs "$1/sys"
exec chroot "$1" /rstwatch watch --json -c 2 --duration 20s`
	w := startArmed(t, ns.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", root))
	snifftest.Refuse(t, ns, netip.MustParseAddrPort("127.0.0.1:45200"), netip.MustParseAddrPort("127.0.0.1:7211"))
	lingerAbort(t, ns, "127.0.0.1:7311")

	stdout, stderr, code := w.wait(t, 10*time.Second)
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	if strings.Contains(stderr, "unavailable") {
		t.Errorf("something was unavailable in the empty root: %q", stderr)
	}
	lines := jsonLines(t, stdout)
	expectFields(t, "refused", resetFrom(t, lines, 7211), map[string]any{
		"cause": "refused", "sender.local": true, "sender.listening": false,
	})
	expectFields(t, "linger abort", resetFrom(t, lines, 7311), map[string]any{
		"cause": "abort", "sender.local": true, "sender.process.pid": pid, "sender.process.comm": "rstwatch.test",
	})

	// Nothing leaked: the mounts died with the namespace, and the root
	// holds what it held.
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatalf("failed to read mountinfo: %v", err)
	}
	if strings.Contains(string(mounts), root) {
		t.Errorf("a mount under %s is visible outside the test's mount namespace:\n%s", root, mounts)
	}
	var names []string
	filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walk %s: %v", p, err)
			return nil
		}
		names = append(names, strings.TrimPrefix(p, root))
		return nil
	})
	if want := []string{"", "/proc", "/rstwatch", "/sys"}; !slices.Equal(names, want) {
		t.Errorf("root holds %q after the run, want %q", names, want)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatalf("failed to open %s: %v", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		t.Fatalf("failed to create %s: %v", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatalf("failed to copy %s: %v", src, err)
	}
	if err := out.Close(); err != nil {
		t.Fatalf("failed to write %s: %v", dst, err)
	}
}
