package caps

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// dropCapabilitiesHelper opens a packet socket, drops every Capability but
// the owner-scanning ones on a process with several threads, and checks
// that every thread lost them and that a second packet socket is refused.
func dropCapabilitiesHelper() error {
	before, err := Read()
	if err != nil {
		return err
	}
	if !before.Effective.Has(NetRaw) || !before.Effective.Has(SysPtrace) {
		return fmt.Errorf("helper started without CAP_NET_RAW and CAP_SYS_PTRACE: %v", before.Effective)
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

	keep := Runtime(false)
	if err := Drop(keep...); err != nil {
		return err
	}
	want := Of(keep...)
	after, err := Read()
	if err != nil {
		return err
	}
	if after.Effective != want || after.Permitted != want || after.Inheritable != 0 {
		return fmt.Errorf("after the drop: effective %v, permitted %v, inheritable %v; want %v, %v, none",
			after.Effective, after.Permitted, after.Inheritable, want, want)
	}
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) < 2 {
		return fmt.Errorf("want several threads, found %d (%v)", len(tasks), err)
	}
	for _, p := range tasks {
		caps, err := ReadStatus(p)
		if err != nil {
			return err
		}
		if caps["CapEff"] != want || caps["CapPrm"] != want || caps["CapInh"] != 0 || caps["CapAmb"] != 0 {
			return fmt.Errorf("%s after the drop: %v", p, caps)
		}
	}
	// Dropping again, or keeping what is already gone, is harmless.
	if err := Drop(append(keep, NetRaw)...); err != nil {
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
	got, err := Read()
	if err != nil {
		t.Fatalf("failed to read capabilities: %v", err)
	}
	status, err := ReadStatus("/proc/thread-self/status")
	if err != nil {
		t.Fatalf("failed to read status: %v", err)
	}
	if got.Effective != status["CapEff"] || got.Permitted != status["CapPrm"] || got.Inheritable != status["CapInh"] {
		t.Errorf("capget = %+v, /proc says %v", got, status)
	}
	if Effective() != got.Effective {
		t.Errorf("Effective() = %v, want %v", Effective(), got.Effective)
	}
}

// TestIntegrationDropCapabilities runs dropCapabilitiesHelper in a child
// that starts with CAP_NET_RAW and CAP_SYS_PTRACE (as root).
func TestIntegrationDropCapabilities(t *testing.T) {
	have, err := Read()
	if err != nil {
		t.Fatalf("failed to read capabilities: %v", err)
	}
	if !have.Effective.Has(NetRaw) || !have.Effective.Has(SysPtrace) {
		t.Skipf("skipping, need CAP_NET_RAW and CAP_SYS_PTRACE (have %v)", have.Effective)
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
