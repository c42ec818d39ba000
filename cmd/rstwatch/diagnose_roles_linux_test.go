package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/diagnose"
	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// serveReplies answers each connection to addr inside ns with a short
// reply to its request, then waits for the client to close.
func serveReplies(t *testing.T, ns *netnstest.NS, addr string) {
	t.Helper()
	var ln net.Listener
	ns.Do(t, func() (err error) { ln, err = net.Listen("tcp", addr); return err })
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.Read(make([]byte, 512))
				c.Write([]byte("HTTP/1.0 200 OK\r\n\r\nok\n"))
				io.Copy(io.Discard, c)
			}()
		}
	}()
}

// programsOf returns a finding's programs as "role comm" -> pids.
func programsOf(f map[string]any) map[string][]string {
	out := map[string][]string{}
	ps, _ := f["programs"].([]any)
	for _, p := range ps {
		p := p.(map[string]any)
		k := fmt.Sprint(p["role"], " ", p["comm"])
		for _, pid := range p["pids"].([]any) {
			out[k] = append(out[k], fmt.Sprint(pid))
		}
	}
	return out
}

func notesOf(m map[string]any) []map[string]any {
	var out []map[string]any
	for _, n := range m["notes"].([]any) {
		out = append(out, n.(map[string]any))
	}
	return out
}

// TestIntegrationDiagnoseHealthCheckerIsANote has a health checker (a
// separate process) send a request on three connections, read the replies
// and close each with a reset, as haproxy's checks do: a healthy setup.
// diagnose must exit 0 with one note naming the checker, and no finding.
func TestIntegrationDiagnoseHealthCheckerIsANote(t *testing.T) {
	ns := netnstest.New(t)
	serveReplies(t, ns, "127.0.0.1:7340")
	jsonRun := startWatch(t, ns, "diagnose", "--duration", "2500ms", "--json")
	textRun := startWatch(t, ns, "diagnose", "--duration", "2500ms")
	checker := startHelper(t, ns, helperChecker, "127.0.0.1:7340")
	if err := checker.Wait(); err != nil {
		t.Fatalf("checker failed: %v", err)
	}
	stdout, stderr, code := jsonRun.wait(t, 5*time.Second)
	if code != 0 {
		t.Fatalf("exit %d, want 0 (expected resets are not alarms); stderr %q\n%s", code, stderr, stdout)
	}
	m := diagnoseJSON(t, stdout)
	if fs := findings(t, m); len(fs) != 0 {
		t.Fatalf("%d findings, want none:\n%s", len(fs), stdout)
	}
	notes := notesOf(m)
	if len(notes) != 1 {
		t.Fatalf("%d notes, want 1:\n%s", len(notes), stdout)
	}
	expectFields(t, "note", notes[0], map[string]any{"cause": "abort", "service_addr": "127.0.0.1:7340", "count": checkerConns,
		"sender_role": "client", "expected": true, "service_from": "handshake"})
	if got := programsOf(notes[0])["client rstwatch.test"]; len(got) != 1 || got[0] != fmt.Sprint(checker.Process.Pid) {
		t.Errorf("note's client programs %v, want the checker (pid %d)", programsOf(notes[0]), checker.Process.Pid)
	}
	text, _, code := textRun.wait(t, 5*time.Second)
	if code != 0 || !strings.Contains(text, "Nothing abnormal") || !strings.Contains(text, "after a completed exchange") || strings.Contains(text, "Findings") {
		t.Errorf("text run: exit %d:\n%s", code, text)
	}
}

// TestIntegrationDiagnoseServerAbortsClients has a server (a separate
// process) abort the connections of three curl clients: one finding, with
// the server as the aborting program and curl as the client.
func TestIntegrationDiagnoseServerAbortsClients(t *testing.T) {
	ns := netnstest.New(t)
	server := startHelper(t, ns, helperAbortAll, "127.0.0.1:7341")
	w := startWatch(t, ns, "diagnose", "--duration", "2500ms", "--json")
	var curls []*exec.Cmd
	for range checkerConns {
		c := ns.Command("curl", "-s", "-m", "3", "http://127.0.0.1:7341/")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		curls = append(curls, c)
	}
	for _, c := range curls {
		c.Wait() // curl fails: the connection was reset
	}
	stdout, stderr, code := w.wait(t, 5*time.Second)
	if code != exitAlert {
		t.Fatalf("exit %d, want %d; stderr %q\n%s", code, exitAlert, stderr, stdout)
	}
	fs := findings(t, diagnoseJSON(t, stdout))
	if len(fs) != 1 {
		t.Fatalf("%d findings, want 1:\n%s", len(fs), stdout)
	}
	expectFields(t, "finding", fs[0], map[string]any{"cause": "abort", "service_addr": "127.0.0.1:7341", "count": checkerConns,
		"sender_role": "server", "roles_known": true, "expected": false})
	progs := programsOf(fs[0])
	if got := progs["server rstwatch.test"]; len(got) != 1 || got[0] != fmt.Sprint(server.Process.Pid) {
		t.Errorf("server programs %v, want rstwatch.test (pid %d)", progs, server.Process.Pid)
	}
	if len(progs["client curl"]) == 0 {
		t.Errorf("programs %v name no curl client", progs)
	}
	for k := range progs {
		if strings.HasPrefix(k, "sender") || strings.HasPrefix(k, "receiver") {
			t.Errorf("roles are known, yet a program is a %s", k)
		}
	}
	t.Logf("programs: %v", progs)
}

// TestIntegrationDiagnoseClientSideFirewall watches the client's side of a
// veth while a firewall in the server's namespace rejects connections to a
// live listener with resets. From the client's side that is a peer answering
// a SYN with a reset; diagnose must not claim that nothing listens there.
func TestIntegrationDiagnoseClientSideFirewall(t *testing.T) {
	srv, cli := netnstest.New(t), netnstest.New(t)
	netnstest.Link(t, srv, "vs", []netip.Prefix{netip.MustParsePrefix("198.18.1.1/24")},
		cli, "vc", []netip.Prefix{netip.MustParsePrefix("198.18.1.2/24")})
	serveReplies(t, srv, "198.18.1.1:7342")
	nft(t, srv, `table inet t {
		chain in { type filter hook input priority 0;
			tcp dport 7342 tcp flags syn reject with tcp reset
		}
	}`)
	jsonRun := startWatch(t, cli, "diagnose", "--duration", "1500ms", "--json")
	textRun := startWatch(t, cli, "diagnose", "--duration", "1500ms")
	for i := range 3 {
		snifftest.Refuse(t, cli, netip.AddrPortFrom(netip.MustParseAddr("198.18.1.2"), uint16(45700+i)), netip.MustParseAddrPort("198.18.1.1:7342"))
	}
	stdout, _, code := jsonRun.wait(t, 5*time.Second)
	text, _, code2 := textRun.wait(t, 5*time.Second)
	if code != exitAlert || code2 != exitAlert {
		t.Fatalf("exit %d/%d, want %d", code, code2, exitAlert)
	}
	fs := findings(t, diagnoseJSON(t, stdout))
	if len(fs) != 1 {
		t.Fatalf("%d findings, want 1:\n%s", len(fs), stdout)
	}
	expectFields(t, "finding", fs[0], map[string]any{"cause": "refused", "sender_local": false, "service_addr": "198.18.1.1:7342"})
	if strings.Contains(text, "nothing listens on") || !strings.Contains(text, "the peer answered the SYN with a reset: nothing listens there, or a firewall rejects; this host cannot tell") {
		t.Fatalf("client-side text claims more than it knows:\n%s", text)
	}
}

// listenBacklog1 makes a listener with backlog 1 on 127.0.0.1:port in ns
// that never accepts.
func listenBacklog1(t *testing.T, ns *netnstest.NS, port int) *unix.SockaddrInet4 {
	t.Helper()
	ln := rawSocket(t, ns)
	sa := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Bind(ln, sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 1); err != nil {
		t.Fatal(err)
	}
	return sa
}

func connectN(t *testing.T, ns *netnstest.NS, sa *unix.SockaddrInet4, n int) {
	t.Helper()
	for range n {
		if err := unix.Connect(rawSocket(t, ns), sa); err != nil && err != unix.EINPROGRESS {
			t.Fatalf("failed to connect: %v", err)
		}
	}
}

// TestIntegrationDiagnoseIdleFullListenerNotBlamed has two backlog-1
// listeners: 7343 filled before the run and idle since (its queue full, no
// SYN pending), 7344 flooded during it. Only 7344 is blamed for the
// namespace's ListenOverflows, which the text quotes once.
func TestIntegrationDiagnoseIdleFullListenerNotBlamed(t *testing.T) {
	ns := netnstest.New(t)
	idle, flooded := listenBacklog1(t, ns, 7343), listenBacklog1(t, ns, 7344)
	connectN(t, ns, idle, 2) // two completed handshakes fill a backlog-1 queue
	time.Sleep(200 * time.Millisecond)
	jsonRun := startWatch(t, ns, "diagnose", "--duration", "2500ms", "--json")
	textRun := startWatch(t, ns, "diagnose", "--duration", "2500ms")
	connectN(t, ns, flooded, 10)
	stdout, _, code := jsonRun.wait(t, 5*time.Second)
	text, _, _ := textRun.wait(t, 5*time.Second)
	if code != exitAlert {
		t.Fatalf("exit %d, want %d:\n%s", code, exitAlert, stdout)
	}
	m := diagnoseJSON(t, stdout)
	var blamed []string
	for _, f := range findings(t, m) {
		if f["cause"] == "overflow" {
			blamed = append(blamed, f["service_addr"].(string))
		}
	}
	if len(blamed) != 1 || blamed[0] != "127.0.0.1:7344" {
		t.Fatalf("overflow blamed on %v, want only 127.0.0.1:7344:\n%s", blamed, stdout)
	}
	for _, l := range m["listeners"].([]any) {
		l := l.(map[string]any)
		if l["addr"] == "127.0.0.1:7343" && (l["full"] != true || numf(t, l["syns_while_full"]) != 0) {
			t.Errorf("idle listener %v: want seen full, with no SYN while full", l)
		}
	}
	if strings.Contains(text, "overflow 127.0.0.1:7343") || strings.Count(text, "ListenOverflows +") > 1 {
		t.Errorf("text blames the idle listener or quotes the counter twice:\n%s", text)
	}
}

// TestIntegrationDiagnoseQuotesSysctls sets the overflow settings of a
// namespace away from the host's, floods a listener there and watches it
// from outside with --netns: every setting the report quotes matches what
// sysctl says inside the namespace.
func TestIntegrationDiagnoseQuotesSysctls(t *testing.T) {
	ns := netnstest.New(t)
	for k, v := range map[string]string{diagnose.SysAbortOnOverflow: "1", diagnose.SysSomaxconn: "100",
		diagnose.SysMaxSynBacklog: "64", diagnose.SysSyncookies: "0"} {
		ns.Sysctl(t, k, v)
	}
	sa := listenBacklog1(t, ns, 7345)
	jsonRun := startArmed(t, exec.Command(binary, "diagnose", "--netns", ns.Path, "--duration", "2500ms", "--json"))
	textRun := startArmed(t, exec.Command(binary, "diagnose", "--netns", ns.Path, "--duration", "2500ms"))
	connectN(t, ns, sa, 8)
	stdout, _, _ := jsonRun.wait(t, 5*time.Second)
	text, _, _ := textRun.wait(t, 5*time.Second)
	m := diagnoseJSON(t, stdout)
	quoted := 0
	for _, name := range diagnose.SysctlNames {
		out, err := ns.Command("sysctl", "-n", name).Output()
		if err != nil {
			t.Fatalf("sysctl -n %s: %v", name, err)
		}
		want := strings.TrimSpace(string(out))
		if got := field(m, "sysctls", name); got != want {
			t.Errorf("report sysctls[%s] = %v, sysctl in the namespace says %q", name, got, want)
		}
		if strings.Contains(text, name+" is ") {
			quoted++
			if !strings.Contains(text, name+" is "+want) {
				t.Errorf("text quotes %s, but not as %q:\n%s", name, want, text)
			}
		}
	}
	if quoted == 0 {
		t.Fatalf("text quotes no setting:\n%s", text)
	}
}
