package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// startHost runs rstwatch in the test's own namespace (not inside ns).
func startHost(t *testing.T, args ...string) *watcher {
	t.Helper()
	return startArmed(t, exec.Command(binary, args...))
}

// startHelper starts the test binary inside ns as helper mode on addr (see
// helper_test.go) and returns once it says it is ready.
func startHelper(t *testing.T, ns *netnstest.NS, mode, addr string) *exec.Cmd {
	t.Helper()
	cmd := ns.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperAddrEnv+"="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("failed to start helper %s: %v", mode, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("helper %s said %q", mode, line)
	}
	go io.Copy(io.Discard, out)
	return cmd
}

// TestIntegrationWatchOtherNamespace watches a test namespace from the
// root namespace, by path and by a process's pid: the resets made inside
// are captured with the namespace's interface names and attributed to the
// process inside it.
func TestIntegrationWatchOtherNamespace(t *testing.T) {
	for _, by := range []string{"netns", "pid"} {
		t.Run(by, func(t *testing.T) {
			ns := netnstest.New(t)
			helper := startHelper(t, ns, helperAbort, "127.0.0.1:7330")
			arg := ns.Path
			if by == "pid" {
				arg = fmt.Sprint(helper.Process.Pid)
			}
			w := startHost(t, "watch", "--"+by, arg, "--json", "-c", "2")
			if want := "listening on all interfaces (lo) in network namespace "; !strings.Contains(w.stderr.String(), want) {
				t.Errorf("listening line %q lacks %q", w.stderr.String(), want)
			}
			snifftest.Refuse(t, ns, netip.MustParseAddrPort("127.0.0.1:45800"), netip.MustParseAddrPort("127.0.0.1:7211"))
			var c net.Conn
			ns.Do(t, func() (err error) { c, err = net.Dial("tcp", "127.0.0.1:7330"); return err })
			defer c.Close()
			stdout, stderr, code := w.wait(t, 5*time.Second)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			lines := jsonLines(t, stdout)
			expectFields(t, "refused", resetFrom(t, lines, 7211), map[string]any{
				"ifname": "lo", "cause": "refused", "sender.local": true, "sender.listening": false,
			})
			expectFields(t, "abort", resetFrom(t, lines, 7330), map[string]any{
				"ifname": "lo", "cause": "abort", "sender.process.pid": helper.Process.Pid, "sender.process.comm": "rstwatch.test",
			})
			if name := field(lines[0], "netns", "name"); by == "netns" && name != ns.Name {
				t.Errorf("netns.name = %v, want %s", name, ns.Name)
			}
		})
	}
}

// TestIntegrationWatchAllNamespaces sees resets in two namespaces at once
// and in a third created after the start, each labelled with its name.
func TestIntegrationWatchAllNamespaces(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	w := startHost(t, "watch", "--all-netns", "--json", "--duration", "8s")
	snifftest.Refuse(t, a, netip.MustParseAddrPort("127.0.0.1:45900"), netip.MustParseAddrPort("127.0.0.1:7211"))
	snifftest.Refuse(t, b, netip.MustParseAddrPort("127.0.0.1:45901"), netip.MustParseAddrPort("127.0.0.1:7211"))
	c := netnstest.New(t)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(w.stderr.String(), "now also watching network namespace "+c.Name) {
		if time.Now().After(deadline) {
			t.Fatalf("the namespace created after the start was not picked up: %s", w.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	snifftest.Refuse(t, c, netip.MustParseAddrPort("127.0.0.1:45902"), netip.MustParseAddrPort("127.0.0.1:7211"))
	time.Sleep(300 * time.Millisecond)
	w.cmd.Process.Signal(os.Interrupt)
	stdout, stderr, code := w.wait(t, 5*time.Second)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// Other tests may run in other namespaces meanwhile: look at ours only.
	seen := map[string]string{}
	for _, m := range jsonLines(t, stdout) {
		name, _ := field(m, "netns", "name").(string)
		if name == a.Name || name == b.Name || name == c.Name {
			seen[name] = fmt.Sprint(m["dst_port"], " ", m["cause"])
		}
	}
	want := map[string]string{a.Name: "45900 refused", b.Name: "45901 refused", c.Name: "45902 refused"}
	for name, w := range want {
		if seen[name] != w {
			t.Errorf("namespace %s: got %q, want %q (all: %v)", name, seen[name], w, seen)
		}
	}
}

func TestNamespaceFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"missing_path", []string{"--netns", "/nonexistent/ns"}, "no network namespace at /nonexistent/ns"},
		{"not_a_namespace", []string{"--netns", "/proc/self/ns/uts"}, "is not a network namespace"},
		{"no_such_pid", []string{"--pid", "999999999"}, "--pid 999999999: no such process"},
		{"both", []string{"--netns", "/proc/self/ns/net", "--pid", "1"}, "give one"},
		{"all_and_one", []string{"--all-netns", "--pid", "1"}, "cannot be used with"},
		{"diagnose_all", []string{"diagnose", "--all-netns"}, "diagnose looks into one network namespace"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(t, exec.Command(binary, tt.args...))
			assertOneLineError(t, stdout, stderr, code, exitUsage, tt.want)
		})
	}
}

// TestIntegrationStatsAndSocketsInNamespace reads another namespace's
// counters and sockets from the root namespace.
func TestIntegrationStatsAndSocketsInNamespace(t *testing.T) {
	ns := netnstest.New(t)
	helper := startHelper(t, ns, helperAbort, "127.0.0.1:7331")
	snifftest.Refuse(t, ns, netip.MustParseAddrPort("127.0.0.1:46100"), netip.MustParseAddrPort("127.0.0.1:7211"))

	stdout, stderr, code := run(t, exec.Command(binary, "stats", "--netns", ns.Path, "--json", "-c", "1", "--interval", "100ms"))
	if code != 0 {
		t.Fatalf("stats: exit %d: %s", code, stderr)
	}
	m := jsonLines(t, stdout)[0]
	if got := field(m, "counters", "AttemptFails", "total"); fmt.Sprint(got) != "1" {
		t.Errorf("AttemptFails total in the namespace = %v, want 1 (the host's counter leaked in?)", got)
	}

	stdout, stderr, code = run(t, exec.Command(binary, "sockets", "--pid", fmt.Sprint(helper.Process.Pid), "--listening", "--json"))
	if code != 0 {
		t.Fatalf("sockets: exit %d: %s", code, stderr)
	}
	lines := jsonLines(t, stdout)
	if len(lines) != 1 {
		t.Fatalf("listeners in the namespace: %d, want the helper's one:\n%s", len(lines), stdout)
	}
	expectFields(t, "listener", lines[0], map[string]any{"local_port": 7331, "pid": helper.Process.Pid, "comm": "rstwatch.test", "state": "LISTEN"})
}

// TestIntegrationIdleRSS holds watch to its memory budget on an idle host:
// peak RSS ≤ 15 MiB with the capture ring, the socket table and the owner
// index in place.
func TestIntegrationIdleRSS(t *testing.T) {
	ns := netnstest.New(t)
	w := startWatch(t, ns, "watch", "--duration", "10s")
	time.Sleep(1500 * time.Millisecond) // a few refreshes of the socket table
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("failed to read status: %v", err)
	}
	var hwm int
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &hwm)
		}
	}
	if hwm == 0 || hwm > 15<<10 {
		t.Fatalf("peak RSS of an idle watch = %d KiB, want 1 to %d", hwm, 15<<10)
	}
	t.Logf("peak RSS of an idle watch: %d KiB", hwm)
	w.cmd.Process.Signal(os.Interrupt)
	if _, stderr, code := w.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// TestIntegrationAllNamespacesCount stops every capture when one of them
// reaches -c, while the others are blocked waiting for packets.
func TestIntegrationAllNamespacesCount(t *testing.T) {
	a := netnstest.New(t)
	w := startHost(t, "watch", "--all-netns", "-c", "1", "--json")
	snifftest.Refuse(t, a, netip.MustParseAddrPort("127.0.0.1:46200"), netip.MustParseAddrPort("127.0.0.1:7211"))
	stdout, stderr, code := w.wait(t, 5*time.Second)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := len(jsonLines(t, stdout)); n != 1 {
		t.Fatalf("printed %d resets with -c 1", n)
	}
}
