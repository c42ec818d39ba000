package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// capsHelperEnv makes a re-executed test binary run dropCapabilitiesHelper
// instead of the tests: dropping capabilities must happen in a process of
// its own. It is checked in init, before TestMain builds anything.
const capsHelperEnv = "RSTWATCH_TEST_CAPS_HELPER"

func init() {
	if os.Getenv(capsHelperEnv) != "" {
		if err := dropCapabilitiesHelper(); err != nil {
			fmt.Println(err)
			if errors.Is(err, syscall.ENOTSUP) {
				os.Exit(3)
			}
			os.Exit(1)
		}
		fmt.Println("ok")
		os.Exit(0)
	}
}

// statusCaps reads the Cap* lines of a /proc/.../status file.
func statusCaps(path string) (map[string]capSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make(map[string]capSet)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasPrefix(k, "Cap") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", path, k, err)
		}
		out[k] = capSet(n)
	}
	return out, sc.Err()
}

// dropCapabilitiesHelper opens a packet socket, drops every capability but
// the owner-scanning ones on a process with several threads, and checks
// that every thread lost them and that a second packet socket is refused.
func dropCapabilitiesHelper() error {
	before, err := readCapabilities()
	if err != nil {
		return err
	}
	if !before.effective.has(capNetRaw) || !before.effective.has(capSysPtrace) {
		return fmt.Errorf("helper started without CAP_NET_RAW and CAP_SYS_PTRACE: %v", before.effective)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("first packet socket: %w", err)
	}
	defer unix.Close(fd)
	// Threads that exist before the drop must lose the capabilities too.
	release := make(chan struct{})
	defer close(release)
	for range 4 {
		go func() {
			runtime.LockOSThread()
			<-release
		}()
	}
	time.Sleep(20 * time.Millisecond)

	keep := runtimeCapabilities(false)
	if err := dropCapabilities(keep...); err != nil {
		return err
	}
	want := capsOf(keep...)
	after, err := readCapabilities()
	if err != nil {
		return err
	}
	if after.effective != want || after.permitted != want || after.inheritable != 0 {
		return fmt.Errorf("after the drop: effective %v, permitted %v, inheritable %v; want %v, %v, none",
			after.effective, after.permitted, after.inheritable, want, want)
	}
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) < 2 {
		return fmt.Errorf("want several threads, found %d (%v)", len(tasks), err)
	}
	for _, p := range tasks {
		caps, err := statusCaps(p)
		if err != nil {
			return err
		}
		if caps["CapEff"] != want || caps["CapPrm"] != want || caps["CapInh"] != 0 || caps["CapAmb"] != 0 {
			return fmt.Errorf("%s after the drop: %v", p, caps)
		}
	}
	// Dropping again, or keeping what is already gone, is harmless.
	if err := dropCapabilities(append(keep, capNetRaw)...); err != nil {
		return fmt.Errorf("second drop: %w", err)
	}
	if fd2, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
		unix.Close(fd2)
		return errors.New("a packet socket opened after CAP_NET_RAW was dropped")
	} else if err != unix.EPERM {
		return fmt.Errorf("second packet socket: %v, want EPERM", err)
	}
	// The socket opened before still works.
	if _, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err != nil {
		return fmt.Errorf("first socket after the drop: %w", err)
	}
	return nil
}

func TestReadCapabilities(t *testing.T) {
	got, err := readCapabilities()
	if err != nil {
		t.Fatalf("failed to read capabilities: %v", err)
	}
	status, err := statusCaps("/proc/thread-self/status")
	if err != nil {
		t.Fatalf("failed to read status: %v", err)
	}
	if got.effective != status["CapEff"] || got.permitted != status["CapPrm"] || got.inheritable != status["CapInh"] {
		t.Errorf("capget = %+v, /proc says %v", got, status)
	}
	if effectiveCapabilities() != got.effective {
		t.Errorf("effectiveCapabilities() = %v, want %v", effectiveCapabilities(), got.effective)
	}
}

// TestIntegrationDropCapabilities runs dropCapabilitiesHelper in a child
// that starts with CAP_NET_RAW and CAP_SYS_PTRACE (as root).
func TestIntegrationDropCapabilities(t *testing.T) {
	have, err := readCapabilities()
	if err != nil {
		t.Fatalf("failed to read capabilities: %v", err)
	}
	if !have.effective.has(capNetRaw) || !have.effective.has(capSysPtrace) {
		t.Skipf("skipping, need CAP_NET_RAW and CAP_SYS_PTRACE (have %v)", have.effective)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), capsHelperEnv+"=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		t.Skipf("skipping, this test binary links cgo, so capabilities cannot change on all threads; run with CGO_ENABLED=0 as CI does: %s", out)
	}
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("helper failed: %v: %s", err, out)
	}
}

// checkRefused waits for a watch -c 1 --json run to end and checks that it
// reported one refused reset sent by this host.
func checkRefused(t *testing.T, w *watcher) (stderr string) {
	t.Helper()
	stdout, stderr, code := w.wait(t, 10*time.Second)
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	lines := jsonLines(t, stdout)
	if len(lines) != 1 {
		t.Fatalf("got %d JSON lines, want 1:\n%s", len(lines), stdout)
	}
	m := lines[0]
	if m["cause"] != "refused" || num(t, m, "src_port") != 7211 {
		t.Errorf("cause %v, src_port %v; want refused from 7211: %v", m["cause"], m["src_port"], m)
	}
	if s, ok := m["sender"].(map[string]any); !ok || s["local"] != true {
		t.Errorf("sender %v, want local: true", m["sender"])
	}
	if !strings.Contains(stderr, "1 resets captured") {
		t.Errorf("stderr lacks the summary: %q", stderr)
	}
	return stderr
}

// TestIntegrationOnlyNetRaw runs watch with CAP_NET_RAW and nothing else,
// as nobody and as root: capture and the socket table (sock_diag needs no
// privilege) still work; naming processes degrades with a note.
func TestIntegrationOnlyNetRaw(t *testing.T) {
	const setpriv = "/usr/bin/setpriv"
	if _, err := os.Stat(setpriv); err != nil {
		t.Fatalf("setpriv (util-linux) is needed: %v", err)
	}
	only := []string{"--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw"}
	for _, tt := range []struct {
		name string
		user []string
	}{
		{"nobody", []string{"--reuid=65534", "--regid=65534", "--clear-groups"}},
		{"root", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := netnstest.New(t)
			args := append(append(append([]string{}, tt.user...), only...), binary, "watch", "--json", "-c", "1", "--duration", "20s")
			w := startArmed(t, ns.Command(setpriv, args...))
			// ip netns exec has exec'ed setpriv, which has exec'ed rstwatch:
			// one pid.
			status, err := statusCaps(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
			if err != nil {
				t.Fatalf("failed to read rstwatch's capabilities: %v", err)
			}
			// Once armed, it has dropped even CAP_NET_RAW: the socket is
			// open, and without the owner capabilities nothing is left to
			// keep.
			if status["CapEff"] != 0 || status["CapBnd"]&^capsOf(capNetRaw) != 0 {
				t.Errorf("armed rstwatch runs with %v (bounding %v), want none within CAP_NET_RAW", status["CapEff"], status["CapBnd"])
			}
			snifftest.Refuse(t, ns, netip.MustParseAddrPort("127.0.0.1:45100"), netip.MustParseAddrPort("127.0.0.1:7211"))
			stderr := checkRefused(t, w)
			// Attribution degrades with one note naming what is missing.
			if !regexp.MustCompile(`(?m)^process names unavailable for \d+ processes: need CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH$`).MatchString(stderr) {
				t.Errorf("no owners note naming the missing capabilities: %q", stderr)
			}
		})
	}
}
