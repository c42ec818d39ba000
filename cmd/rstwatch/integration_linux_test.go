package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/render"
	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// lockedBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// watcher is an rstwatch process running inside a test namespace.
type watcher struct {
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
	code           int
}

// startWatch runs rstwatch with args inside ns and waits until it says its
// capture is armed.
func startWatch(t *testing.T, ns *netnstest.NS, args ...string) *watcher {
	t.Helper()
	return startArmed(t, ns.Command(binary, args...))
}

// startArmed starts cmd (an rstwatch command line) and waits until it says
// its capture is armed.
func startArmed(t *testing.T, cmd *exec.Cmd) *watcher {
	t.Helper()
	w := &watcher{cmd: cmd, done: make(chan struct{})}
	w.cmd.Stdout, w.cmd.Stderr = &w.stdout, &w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("failed to start rstwatch: %v", err)
	}
	go func() {
		err := w.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			w.code = ee.ExitCode()
		} else if err != nil {
			w.code = -1
		}
		close(w.done)
	}()
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		<-w.done
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(w.stderr.String(), "capturing TCP resets") {
		select {
		case <-w.done:
			t.Fatalf("rstwatch exited with %d before arming: %s", w.code, w.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rstwatch did not arm within 10s: %q", w.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return w
}

// wait waits for the process to exit on its own.
func (w *watcher) wait(t *testing.T, limit time.Duration) (stdout, stderr string, code int) {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(limit):
		w.cmd.Process.Kill()
		<-w.done
		t.Fatalf("rstwatch did not stop within %v; stderr %q", limit, w.stderr.String())
	}
	return w.stdout.String(), w.stderr.String(), w.code
}

// jsonLines decodes stdout, failing on anything that is not one JSON object
// per line.
func jsonLines(t *testing.T, stdout string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("stdout line is not JSON: %v: %q", err, sc.Text())
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("stdout line has more than one JSON value: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func num(t *testing.T, m map[string]any, key string) uint64 {
	t.Helper()
	n, ok := m[key].(json.Number)
	if !ok {
		t.Fatalf("field %q = %#v, want a number", key, m[key])
	}
	var v uint64
	if _, err := fmt.Sscan(n.String(), &v); err != nil {
		t.Fatalf("field %q = %s: %v", key, n, err)
	}
	return v
}

// TestIntegrationSeedScenario is the operator's story: a client retries a
// port where nothing listens, twice a second; every reset must be reported
// exactly once, on loopback, with the right ports and sequence numbers.
func TestIntegrationSeedScenario(t *testing.T) {
	for _, tt := range []struct{ name, addr, family string }{{"ipv4", "127.0.0.1", "ipv4"}, {"ipv6", "::1", "ipv6"}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := netnstest.New(t)
			const attempts = 10
			w := startWatch(t, ns, "watch", "--json", "-c", fmt.Sprint(attempts), "--duration", "30s")
			oracle := snifftest.NewSYNOracle(t, ns)
			server := netip.AddrPortFrom(netip.MustParseAddr(tt.addr), 7211)
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for i := range attempts {
				<-tick.C
				snifftest.Refuse(t, ns, netip.AddrPortFrom(server.Addr(), uint16(45000+i)), server)
			}
			stdout, stderr, code := w.wait(t, 5*time.Second)
			if code != 0 {
				t.Fatalf("exit code %d, stderr %q", code, stderr)
			}
			if !strings.Contains(stderr, fmt.Sprintf("%d resets captured, 0 dropped by kernel", attempts)) {
				t.Errorf("stderr lacks the capture summary: %q", stderr)
			}
			lines := jsonLines(t, stdout)
			if len(lines) != attempts {
				t.Fatalf("got %d JSON lines, want %d:\n%s", len(lines), attempts, stdout)
			}
			isn := oracle.ISNs(t)
			for i, m := range lines {
				for _, k := range render.EventFieldsV1 {
					if _, ok := m[k]; !ok {
						t.Errorf("line %d lacks field %q", i, k)
					}
				}
				client := uint16(45000 + i)
				want := map[string]string{"ifname": "lo", "direction": "local", "family": tt.family,
					"src": server.Addr().String(), "dst": server.Addr().String(), "flags": "R."}
				for k, v := range want {
					if m[k] != v {
						t.Errorf("line %d: %s = %v, want %s", i, k, m[k], v)
					}
				}
				if num(t, m, "src_port") != 7211 || num(t, m, "dst_port") != uint64(client) {
					t.Errorf("line %d: ports %v > %v, want 7211 > %d", i, m["src_port"], m["dst_port"], client)
				}
				if num(t, m, "seq") != 0 || num(t, m, "ack") != uint64(isn[client]+1) || num(t, m, "window") != 0 || num(t, m, "payload_len") != 0 {
					t.Errorf("line %d: seq %v ack %v win %v len %v, want 0 %d 0 0", i, m["seq"], m["ack"], m["window"], m["payload_len"], isn[client]+1)
				}
				if num(t, m, "ifindex") != 1 || num(t, m, "ttl") != 64 {
					t.Errorf("line %d: ifindex %v ttl %v, want 1 64", i, m["ifindex"], m["ttl"])
				}
				ts, err := time.Parse(time.RFC3339Nano, m["time"].(string))
				if err != nil || time.Since(ts) > time.Minute {
					t.Errorf("line %d: time %v is not a recent RFC 3339 time (%v)", i, m["time"], err)
				}
			}
		})
	}
}

var textLine = regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{6} (\S+) (in|out|local) (\S+) > (\S+): Flags \[R\.\], seq 0, ack \d+, win 0, length 0(; .*)?$`)

func TestIntegrationVethDirections(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	netnstest.Link(t, a, "va", []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24")},
		b, "vb", []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24")})
	wa := startWatch(t, a, "-c", "1")
	wb := startWatch(t, b, "-c", "1")
	snifftest.Refuse(t, b, netip.MustParseAddrPort("198.18.0.2:46000"), netip.MustParseAddrPort("198.18.0.1:7211"))
	for _, side := range []struct {
		name string
		w    *watcher
		want []string
	}{
		{"A (refusing)", wa, []string{"va", "out", "198.18.0.1.7211", "198.18.0.2.46000"}},
		{"B (client)", wb, []string{"vb", "in", "198.18.0.1.7211", "198.18.0.2.46000"}},
	} {
		stdout, stderr, code := side.w.wait(t, 5*time.Second)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", side.name, code, stderr)
		}
		m := textLine.FindStringSubmatch(strings.TrimSuffix(stdout, "\n"))
		if m == nil {
			t.Fatalf("%s: output is not one reset line: %q", side.name, stdout)
		}
		if got := m[1:5]; strings.Join(got, " ") != strings.Join(side.want, " ") {
			t.Errorf("%s: got %v, want %v", side.name, got, side.want)
		}
		if !strings.Contains(stderr, "listening on all interfaces (lo, ") {
			t.Errorf("%s: listening line %q does not list the namespace's interfaces", side.name, stderr)
		}
	}
}

func TestIntegrationCleanCloseIsSilent(t *testing.T) {
	ns := netnstest.New(t)
	// --no-explain: without attribution the filter passes resets only, so
	// the kernel's count must stay 0 too.
	w := startWatch(t, ns, "--duration", "1500ms", "--no-explain")
	var ln net.Listener
	ns.Do(t, func() (err error) { ln, err = net.Listen("tcp", "[::1]:0"); return err })
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	ns.Do(t, func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		c.Write([]byte("data both ways, then FIN"))
		c.(*net.TCPConn).CloseWrite()
		io.ReadAll(c)
		return c.Close()
	})
	stdout, stderr, code := w.wait(t, 5*time.Second)
	if code != 0 || stdout != "" {
		t.Fatalf("exit %d, stdout %q; want 0 and nothing", code, stdout)
	}
	if !strings.Contains(stderr, "0 resets captured, 0 dropped by kernel\n0 packets received by filter") {
		t.Fatalf("summary: %q", stderr)
	}
}

func TestIntegrationPortAndHostInKernel(t *testing.T) {
	ns := netnstest.New(t)
	w := startWatch(t, ns, "--json", "--port", "7211", "--host", "127.0.0.1", "--duration", "2s")
	for i, srv := range []string{"127.0.0.1:7211", "127.0.0.1:7212", "[::1]:7211", "[::1]:7212", "127.0.0.1:7211"} {
		s := netip.MustParseAddrPort(srv)
		snifftest.Refuse(t, ns, netip.AddrPortFrom(s.Addr(), uint16(47000+i)), s)
	}
	stdout, stderr, code := w.wait(t, 5*time.Second)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := jsonLines(t, stdout)
	var ports []string
	for _, m := range lines {
		ports = append(ports, fmt.Sprint(m["src"], ":", m["src_port"], ">", m["dst_port"]))
	}
	sort.Strings(ports)
	if want := "127.0.0.1:7211>47000 127.0.0.1:7211>47004"; strings.Join(ports, " ") != want {
		t.Fatalf("resets %v, want %s", ports, want)
	}
	// Only those two, and the two SYNs that drew them (passed for
	// attribution), ever left the kernel.
	if !strings.Contains(stderr, "\n4 packets received by filter\n") {
		t.Fatalf("kernel filter count: %q", stderr)
	}
}

func TestIntegrationInterruptStopsCleanly(t *testing.T) {
	ns := netnstest.New(t)
	w := startWatch(t, ns, "-i", "lo")
	snifftest.Refuse(t, ns, netip.MustParseAddrPort("127.0.0.1:48000"), netip.MustParseAddrPort("127.0.0.1:7211"))
	time.Sleep(100 * time.Millisecond)
	// ip netns exec runs rstwatch as its child via exec, same pid.
	if err := w.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("failed to signal: %v", err)
	}
	stdout, stderr, code := w.wait(t, 5*time.Second)
	if code != 0 {
		t.Fatalf("exit %d after SIGINT: %s", code, stderr)
	}
	if strings.Count(stdout, "\n") != 1 || !strings.Contains(stdout, "127.0.0.1.7211 > 127.0.0.1.48000") {
		t.Errorf("stdout %q, want the one reset", stdout)
	}
	if !strings.HasPrefix(stderr, "listening on lo, capturing TCP resets\n") || !strings.Contains(stderr, "1 resets captured, 0 dropped by kernel") {
		t.Errorf("stderr %q", stderr)
	}
}

func TestIntegrationNoPrivilege(t *testing.T) {
	cmd := exec.Command(binary, "watch")
	// As nobody, without capabilities, socket(AF_PACKET) fails with EPERM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	stdout, stderr, code := run(t, cmd)
	assertOneLineError(t, stdout, stderr, code, exitUsage, "needs CAP_NET_RAW: run as root or grant it with `setcap cap_net_raw+ep rstwatch`")
}
