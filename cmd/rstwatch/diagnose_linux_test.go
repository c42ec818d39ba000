package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// diagnoseJSON decodes diagnose --json output.
func diagnoseJSON(t *testing.T, stdout string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("diagnose --json is not one JSON document: %v\n%s", err, stdout)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("diagnose --json printed more than one document:\n%s", stdout)
	}
	return m
}

func findings(t *testing.T, m map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, f := range m["findings"].([]any) {
		out = append(out, f.(map[string]any))
	}
	return out
}

func numf(t *testing.T, v any) float64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%#v is not a number", v)
	}
	f, err := n.Float64()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestIntegrationDiagnoseSeedScenario is the operator's story end to end: a
// collector listened on 7211 and stopped; an agent keeps connecting there
// twice a second.
func TestIntegrationDiagnoseSeedScenario(t *testing.T) {
	ns := netnstest.New(t)
	jsonRun := startWatch(t, ns, "diagnose", "--duration", "5s", "--json")
	textRun := startWatch(t, ns, "diagnose", "--duration", "5s")

	// The collector: a separate process that listens for a second.
	collector := startHelper(t, ns, helperListen, "127.0.0.1:7211")
	if err := collector.Wait(); err != nil {
		t.Fatalf("collector failed: %v", err)
	}
	time.Sleep(300 * time.Millisecond)

	// The agent: twice a second until diagnose is done (bounded by it).
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < 20; i++ {
		select {
		case <-jsonRun.done:
			i = 20
			continue
		case <-tick.C:
		}
		snifftest.Refuse(t, ns, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(45500+i)), netip.MustParseAddrPort("127.0.0.1:7211"))
	}

	stdout, stderr, code := jsonRun.wait(t, 5*time.Second)
	if code != exitAlert {
		t.Fatalf("exit %d, want %d (a finding); stderr %q", code, exitAlert, stderr)
	}
	m := diagnoseJSON(t, stdout)
	for _, k := range []string{"duration_s", "counters", "findings", "unexplained", "drops"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	fs := findings(t, m)
	if len(fs) == 0 {
		t.Fatalf("no findings:\n%s", stdout)
	}
	top := fs[0]
	expectFields(t, "top finding", top, map[string]any{
		"cause": "refused", "local": "127.0.0.1:7211", "direction": "local", "listener.listening": false,
		"listener.pid": collector.Process.Pid, "listener.comm": "rstwatch.test",
	})
	if r := numf(t, top["rate_per_s"]); r < 1.5 || r > 2.5 {
		t.Errorf("rate_per_s = %v, want 2 ± 25%%", r)
	}
	foundLast := false
	for _, p := range top["processes"].([]any) {
		p := p.(map[string]any)
		foundLast = foundLast || p["role"] == "last_listener" && fmt.Sprint(p["pid"]) == fmt.Sprint(collector.Process.Pid)
	}
	if !foundLast {
		t.Errorf("processes do not name the stopped collector (pid %d): %v", collector.Process.Pid, top["processes"])
	}

	text, stderr, code := textRun.wait(t, 5*time.Second)
	if code != exitAlert {
		t.Fatalf("text run: exit %d, stderr %q", code, stderr)
	}
	want := fmt.Sprintf("nothing listens on 127.0.0.1:7211 (the kernel's listening sockets were checked at each reset); rstwatch.test (pid %d) listened there until ", collector.Process.Pid)
	if !strings.Contains(text, want) {
		t.Errorf("text report lacks the one-sentence advice %q:\n%s", want, text)
	}
}

// TestIntegrationDiagnoseListenOverflow has a backlog-1 listener that never
// accepts and no tcp_abort_on_overflow: no resets at all, only the counter
// and the queue tell.
func TestIntegrationDiagnoseListenOverflow(t *testing.T) {
	ns := netnstest.New(t)
	ln := rawSocket(t, ns)
	sa := &unix.SockaddrInet4{Port: 7320, Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Bind(ln, sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 1); err != nil {
		t.Fatal(err)
	}
	w := startWatch(t, ns, "diagnose", "--duration", "2s", "--json")
	for range 12 {
		fd := rawSocket(t, ns)
		if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
			t.Fatalf("failed to connect: %v", err)
		}
	}
	stdout, stderr, code := w.wait(t, 5*time.Second)
	if code != exitAlert {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitAlert, stderr)
	}
	m := diagnoseJSON(t, stdout)
	var overflow map[string]any
	for _, f := range findings(t, m) {
		if f["cause"] == "overflow" && f["local"] == "127.0.0.1:7320" {
			overflow = f
		}
	}
	if overflow == nil {
		t.Fatalf("no overflow finding for 127.0.0.1:7320:\n%s", stdout)
	}
	expectFields(t, "overflow", overflow, map[string]any{"listener.pid": pid, "listener.backlog": 1, "listener.comm": "rstwatch.test"})
	if !strings.Contains(overflow["advice"].(string), "had a full accept queue") {
		t.Errorf("advice %q", overflow["advice"])
	}
	if numf(t, field(m, "counters", "end", "ListenOverflows")) == 0 {
		t.Errorf("ListenOverflows did not rise")
	}
}

// TestIntegrationDiagnoseFirewall rejects connections to a live listener
// with nft: resets leave the host that the stack did not count.
func TestIntegrationDiagnoseFirewall(t *testing.T) {
	ns := netnstest.New(t)
	var fd int
	ns.Do(t, func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: 7321, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return err
		}
		return unix.Listen(fd, 16)
	})
	defer unix.Close(fd)
	nft(t, ns, `table inet t {
		chain in { type filter hook input priority 0;
			tcp dport 7321 tcp flags syn reject with tcp reset
		}
	}`)
	w := startWatch(t, ns, "diagnose", "--duration", "1500ms", "--json")
	for i := range 3 {
		snifftest.Refuse(t, ns, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(45600+i)), netip.MustParseAddrPort("127.0.0.1:7321"))
	}
	stdout, stderr, code := w.wait(t, 5*time.Second)
	if code != exitAlert {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	m := diagnoseJSON(t, stdout)
	fs := findings(t, m)
	if len(fs) == 0 || fs[0]["cause"] != "rejected" {
		t.Fatalf("top finding is not rejected:\n%s", stdout)
	}
	found := false
	for _, u := range m["unexplained"].([]any) {
		u := u.(map[string]any)
		if u["kind"] == "resets_not_counted" && numf(t, u["count"]) == 3 {
			found = true
		}
	}
	if !found {
		t.Fatalf("report does not note 3 resets uncounted by OutRsts: %v", m["unexplained"])
	}
}

func TestIntegrationDiagnoseQuiet(t *testing.T) {
	ns := netnstest.New(t)
	w := startWatch(t, ns, "diagnose", "--duration", "1s")
	stdout, stderr, code := w.wait(t, 5*time.Second)
	if code != 0 {
		t.Fatalf("exit %d on a quiet namespace: %s\n%s", code, stderr, stdout)
	}
	if !strings.Contains(stdout, "Nothing abnormal") || strings.Count(stdout, "\n") > 4 {
		t.Fatalf("quiet report is not short: %q", stdout)
	}
}

// field digs a value out of a decoded JSON line: field(m, "sender",
// "process", "pid").
func field(m map[string]any, path ...string) any {
	var v any = m
	for _, k := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}
