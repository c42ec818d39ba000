//go:build linux

// Package netnstest creates throwaway network namespaces for privileged tests.
//
// Every namespace is created with ip-netns(8), has its loopback interface up,
// and is deleted when the test ends, so tests never touch the host's
// interfaces or traffic. Creating one needs CAP_SYS_ADMIN; without it the test
// is skipped with a message naming that capability.
package netnstest

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rstwatch/rstwatch/proc/netns"
)

var seq atomic.Uint64

// NS is a network namespace created for one test.
type NS struct {
	Name string // name under /run/netns
	Path string // /run/netns/Name, usable with setns(2)
}

// New creates a network namespace with lo up and deletes it when t ends.
func New(t testing.TB) *NS {
	t.Helper()
	name := fmt.Sprintf("rstw-%d-%d", os.Getpid(), seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		if bytes.Contains(out, []byte("Operation not permitted")) || bytes.Contains(out, []byte("Permission denied")) {
			t.Skipf("skipping, permission denied creating a network namespace (need CAP_SYS_ADMIN): %s", bytes.TrimSpace(out))
		}
		t.Fatalf("failed to create network namespace %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	ns := &NS{Name: name, Path: "/run/netns/" + name}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("failed to delete network namespace %s: %v: %s", name, err, bytes.TrimSpace(out))
		}
	})
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// IP runs `ip -n NAME args...` and fails the test on error.
func (ns *NS) IP(t testing.TB, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"-n", ns.Name}, args...)...)
}

// Command returns a command that runs inside the namespace (ip netns exec).
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Do runs fn on a thread inside the namespace; sockets it opens live there.
func (ns *NS) Do(t testing.TB, fn func() error) {
	t.Helper()
	if err := netns.Do(ns.Path, fn); err != nil {
		t.Fatalf("failed to run in namespace %s: %v", ns.Name, err)
	}
}

// Sysctl sets a per-namespace sysctl such as net.ipv4.tcp_abort_on_overflow.
func (ns *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	// /proc/sys/net belongs to the namespace of the thread that opens it.
	ns.Do(t, func() error { return os.WriteFile(path, []byte(value), 0o644) })
}

// Link joins namespaces a and b with a veth pair named ifA (in a) and ifB (in
// b), brings both up and assigns the given addresses (IPv6 ones without DAD so
// they are usable at once). It returns nothing: the pair dies with the
// namespaces.
func Link(t testing.TB, a *NS, ifA string, addrsA []netip.Prefix, b *NS, ifB string, addrsB []netip.Prefix) {
	t.Helper()
	run(t, "ip", "link", "add", ifA, "netns", a.Name, "type", "veth", "peer", "name", ifB, "netns", b.Name)
	for _, side := range []struct {
		ns    *NS
		ifi   string
		addrs []netip.Prefix
	}{{a, ifA, addrsA}, {b, ifB, addrsB}} {
		for _, p := range side.addrs {
			args := []string{"addr", "add", p.String(), "dev", side.ifi}
			if p.Addr().Is6() {
				args = append(args, "nodad")
			}
			side.ns.IP(t, args...)
		}
		side.ns.IP(t, "link", "set", side.ifi, "up")
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("failed to run %s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out)
}
