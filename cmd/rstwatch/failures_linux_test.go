package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
)

// The scenarios of issue 3/7: connections that fail without a reset (a
// firewall that drops or rejects with ICMP, a route that is unreachable, a
// SYN-ACK nobody acknowledges) and a reset that answers data sent after
// close. Each runs over IPv4 and IPv6 between a client namespace and a
// server (or router) namespace, with rstwatch watching in the client's.

// failNet is a client namespace joined to a server namespace.
type failNet struct {
	client, server *netnstest.NS
	c, s           netip.Addr // client and server addresses
}

// families are the IP versions each scenario runs over (true: IPv6).
var families = []bool{false, true}

func familyName(v6 bool) string {
	if v6 {
		return "ipv6"
	}
	return "ipv4"
}

// listen opens a listener on addr in the server's namespace, closed when
// the test ends.
func (f *failNet) listen(t *testing.T, addr netip.AddrPort) net.Listener {
	t.Helper()
	var ln net.Listener
	f.server.Do(t, func() (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	t.Cleanup(func() { ln.Close() })
	return ln
}

func newFailNet(t *testing.T, v6 bool) *failNet {
	f := &failNet{client: netnstest.New(t), server: netnstest.New(t)}
	if v6 {
		f.c, f.s = netip.MustParseAddr("fd53::1"), netip.MustParseAddr("fd53::2")
		netnstest.Link(t, f.client, "vc", []netip.Prefix{netip.PrefixFrom(f.c, 64)}, f.server, "vs", []netip.Prefix{netip.PrefixFrom(f.s, 64)})
	} else {
		f.c, f.s = netip.MustParseAddr("198.18.53.1"), netip.MustParseAddr("198.18.53.2")
		netnstest.Link(t, f.client, "vc", []netip.Prefix{netip.PrefixFrom(f.c, 24)}, f.server, "vs", []netip.Prefix{netip.PrefixFrom(f.s, 24)})
	}
	return f
}

// curl connects from the client namespace to addr the way a user would,
// giving up after two and a half seconds; it returns the started command.
func curl(t *testing.T, ns *netnstest.NS, addr netip.AddrPort) *exec.Cmd {
	t.Helper()
	cmd := ns.Command("curl", "-s", "-o", "/dev/null", "--connect-timeout", "2.5", "http://"+addr.String()+"/")
	if err := cmd.Start(); err != nil {
		t.Fatalf("failed to start curl: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// eventOf returns the first JSON event of kind to port.
func eventOf(t *testing.T, stdout, kind string, port uint16) map[string]any {
	t.Helper()
	for _, m := range jsonLines(t, stdout) {
		if m["kind"] == kind && fmt.Sprint(m["dst_port"]) == fmt.Sprint(port) {
			return m
		}
	}
	t.Fatalf("no %s event to port %d in:\n%s", kind, port, stdout)
	return nil
}

func TestIntegrationFailuresFirewall(t *testing.T) {
	for _, tt := range []struct {
		name, rule    string
		kind, cause   string
		by            string // the icmp.by of an unreachable event
		wantClientPID bool   // the SYN-SENT socket is there to be named
	}{
		{name: "drop", rule: "drop", kind: "unanswered", cause: "timeout", wantClientPID: true},
		{name: "reject", rule: "reject", kind: "unreachable", cause: "rejected", by: "destination"},
		{name: "admin_prohibited", rule: "reject with icmpx type admin-prohibited", kind: "unreachable", cause: "rejected", by: "destination"},
		{name: "host_unreachable", rule: "reject with icmpx type host-unreachable", kind: "unreachable", cause: "unreachable", by: "destination"},
	} {
		for _, v6 := range families {
			t.Run(tt.name+"/"+familyName(v6), func(t *testing.T) {
				t.Parallel()
				f := newFailNet(t, v6)
				nft(t, f.server, fmt.Sprintf("table inet t {\n chain in {\n type filter hook input priority 0;\n tcp dport 8080 %s\n }\n}\n", tt.rule))
				w := startWatch(t, f.client, "--json", "-c", "1")
				client := curl(t, f.client, netip.AddrPortFrom(f.s, 8080))
				stdout, stderr, code := w.wait(t, 6*time.Second)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				if !strings.Contains(stderr, "failures without a reset (SYNs or SYN-ACKs sent again, ICMP errors)") {
					t.Errorf("closing counts do not count the failure: %q", stderr)
				}
				m := eventOf(t, stdout, tt.kind, 8080)
				expectFields(t, tt.name, m, map[string]any{
					"cause": tt.cause, "src": f.c, "dst": f.s, "dst_port": 8080, "sender.local": true, "target.local": false,
				})
				if tt.kind == "unanswered" {
					expectFields(t, tt.name, m, map[string]any{"flags": "S", "attempts": 2})
					// Linux sends the SYN again after one second.
					if w, err := m["waited_s"].(json.Number).Float64(); err != nil || w < 0.9 || w > 2 {
						t.Errorf("waited_s = %v, want about 1", m["waited_s"])
					}
				} else {
					expectFields(t, tt.name, m, map[string]any{"icmp.by": tt.by, "icmp.from": f.s})
				}
				pid, comm := field(m, "sender", "process", "pid"), field(m, "sender", "process", "comm")
				switch {
				case fmt.Sprint(pid) == fmt.Sprint(client.Process.Pid):
					// comm is curl's, or "ip" when the owner index
					// named the pid before `ip netns exec` exec'd curl.
					if comm != "curl" && comm != "ip" {
						t.Errorf("sender.process.comm = %v, want curl", comm)
					}
				case !tt.wantClientPID && pid == nil:
					// The socket was gone before the lookup (fact 14).
				default:
					t.Errorf("sender.process = %v (%v), want curl pid %d", pid, comm, client.Process.Pid)
				}
			})
		}
	}
}

// TestIntegrationFailuresRouteUnreachable: a router on the way has an
// `unreachable` route to the server's network and says so with ICMP.
func TestIntegrationFailuresRouteUnreachable(t *testing.T) {
	for _, v6 := range families {
		fam := "-4"
		if v6 {
			fam = "-6"
		}
		t.Run(familyName(v6), func(t *testing.T) {
			t.Parallel()
			f := newFailNet(t, v6) // the "server" namespace is the router
			server := netip.MustParseAddrPort("198.18.55.5:8080")
			if v6 {
				server = netip.MustParseAddrPort("[fd55::5]:8080")
				f.server.Sysctl(t, "net.ipv6.conf.all.forwarding", "1")
			} else {
				f.server.Sysctl(t, "net.ipv4.ip_forward", "1")
			}
			f.client.IP(t, fam, "route", "add", "default", "via", f.s.String())
			f.server.IP(t, fam, "route", "add", "unreachable", netip.PrefixFrom(server.Addr(), 64-32*boolInt(!v6)).Masked().String())
			w := startWatch(t, f.client, "--json", "-c", "1")
			client := curl(t, f.client, server)
			stdout, stderr, code := w.wait(t, 6*time.Second)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			m := eventOf(t, stdout, "unreachable", 8080)
			expectFields(t, "route", m, map[string]any{
				"cause": "unreachable", "src": f.c, "dst": server.Addr(), "icmp.by": "router", "icmp.from": f.s,
			})
			if pid := field(m, "sender", "process", "pid"); pid != nil && fmt.Sprint(pid) != fmt.Sprint(client.Process.Pid) {
				t.Errorf("sender.process.pid = %v, want curl's %d or null", pid, client.Process.Pid)
			}
			t.Logf("%s: %v", familyName(v6), m["icmp"])
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestIntegrationFailuresSynAckAgain: the client's ACK of the SYN-ACK is
// lost (dropped on its way out), so the server sends its SYN-ACK again:
// reported as unanswered, client first, naming the client.
func TestIntegrationFailuresSynAckAgain(t *testing.T) {
	for _, v6 := range families {
		t.Run(familyName(v6), func(t *testing.T) {
			t.Parallel()
			f := newFailNet(t, v6)
			server := netip.AddrPortFrom(f.s, 8090)
			f.listen(t, server)
			nft(t, f.client, "table inet t {\n chain out {\n type filter hook output priority 0;\n tcp dport 8090 tcp flags & (fin|syn|rst|psh|ack) == ack drop\n }\n}\n")
			w := startWatch(t, f.client, "--json", "-c", "1")
			var c net.Conn
			f.client.Do(t, func() (err error) {
				c, err = net.DialTimeout("tcp", server.String(), 2*time.Second)
				return err
			})
			defer c.Close()
			local := c.LocalAddr().(*net.TCPAddr).AddrPort()
			stdout, stderr, code := w.wait(t, 6*time.Second)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			m := eventOf(t, stdout, "unanswered", 8090)
			expectFields(t, "syn-ack", m, map[string]any{
				"cause": "timeout", "flags": "S.", "src": f.c, "src_port": local.Port(), "dst": f.s, "attempts": 2,
				"sender.local": true, "target.local": false, "sender.process.pid": pid,
			})
		})
	}
}

// writeThenClose accepts one connection on ln, writes an error line and
// closes it at once, as redis-server does past maxclients.
func writeThenClose(ln net.Listener) {
	c, err := ln.Accept()
	if err != nil {
		return
	}
	c.Write([]byte("-ERR max number of clients reached\r\n"))
	c.Close()
}

// dataAfterClose connects to server from ns, reads the server's answer
// (its FIN follows), then sends a command the closed socket answers with a
// reset (KERNEL-NOTES fact 21).
func dataAfterClose(t *testing.T, ns *netnstest.NS, server netip.AddrPort) {
	t.Helper()
	var c net.Conn
	ns.Do(t, func() (err error) {
		c, err = net.DialTimeout("tcp", server.String(), 2*time.Second)
		return err
	})
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 64)
	if _, err := c.Read(buf); err != nil {
		t.Fatalf("read the server's answer: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // the FIN has come
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		t.Fatalf("send after close: %v", err)
	}
}

// TestIntegrationFailuresDataAfterClose: a server writes, closes, then
// gets data: the reset is "closed", not "stale".
func TestIntegrationFailuresDataAfterClose(t *testing.T) {
	for _, v6 := range families {
		t.Run(familyName(v6), func(t *testing.T) {
			t.Parallel()
			f := newFailNet(t, v6)
			server := netip.AddrPortFrom(f.s, 6380)
			ln := f.listen(t, server)
			go writeThenClose(ln)
			w := startWatch(t, f.client, "--json", "-c", "1")
			dataAfterClose(t, f.client, server)
			stdout, stderr, code := w.wait(t, 6*time.Second)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			m := resetFrom(t, jsonLines(t, stdout), 6380)
			expectFields(t, "data after close", m, map[string]any{
				"kind": "reset", "cause": "closed", "flags": "R", "window": 0, "sender.local": false, "target.local": true,
			})
		})
	}
}

// TestIntegrationFailuresRedisMaxclients: the same with a real
// redis-server past `maxclients 1`, as a user would meet it.
func TestIntegrationFailuresRedisMaxclients(t *testing.T) {
	redis, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed")
	}
	for _, v6 := range families {
		t.Run(familyName(v6), func(t *testing.T) {
			t.Parallel()
			f := newFailNet(t, v6)
			server := netip.AddrPortFrom(f.s, 6379)
			srv := f.server.Command(redis, "--port", "6379", "--bind", f.s.String(), "--protected-mode", "no",
				"--maxclients", "1", "--save", "", "--appendonly", "no")
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { srv.Process.Kill(); srv.Wait() }()
			// The one client redis accepts.
			var first net.Conn
			deadline := time.Now().Add(5 * time.Second)
			for first == nil {
				f.client.Do(t, func() error {
					first, _ = net.DialTimeout("tcp", server.String(), time.Second)
					return nil
				})
				if first == nil {
					if time.Now().After(deadline) {
						t.Fatal("redis-server did not start listening within 5s")
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			defer first.Close()
			first.Write([]byte("PING\r\n"))
			first.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := first.Read(make([]byte, 16)); err != nil {
				t.Fatalf("first client: %v", err)
			}
			w := startWatch(t, f.client, "--json", "-c", "1")
			dataAfterClose(t, f.client, server)
			stdout, stderr, code := w.wait(t, 6*time.Second)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			m := resetFrom(t, jsonLines(t, stdout), 6379)
			expectFields(t, "redis maxclients", m, map[string]any{"kind": "reset", "cause": "closed"})
		})
	}
}

// TestIntegrationFailuresDiagnose is the Done-when of issue 3/7 from the
// client's namespace: a firewall that drops, one that rejects with ICMP and
// a server that closes before the client's next command are each a
// finding of `diagnose`, which exits 3.
func TestIntegrationFailuresDiagnose(t *testing.T) {
	for _, v6 := range families {
		t.Run(familyName(v6), func(t *testing.T) {
			t.Parallel()
			f := newFailNet(t, v6)
			nft(t, f.server, "table inet t {\n chain in {\n type filter hook input priority 0;\n tcp dport 8080 drop\n tcp dport 8081 reject\n }\n}\n")
			var ln net.Listener
			f.server.Do(t, func() (err error) {
				ln, err = net.Listen("tcp", netip.AddrPortFrom(f.s, 6380).String())
				return err
			})
			defer ln.Close()
			go writeThenClose(ln)
			w := startWatch(t, f.client, "diagnose", "--duration", "3500ms", "--json")
			drop := curl(t, f.client, netip.AddrPortFrom(f.s, 8080))
			curl(t, f.client, netip.AddrPortFrom(f.s, 8081))
			dataAfterClose(t, f.client, netip.AddrPortFrom(f.s, 6380))
			stdout, stderr, code := w.wait(t, 10*time.Second)
			if code != 3 {
				t.Fatalf("exit %d, want 3: %s\n%s", code, stderr, stdout)
			}
			got := map[string]map[string]any{}
			for _, fd := range findings(t, diagnoseJSON(t, stdout)) {
				got[fmt.Sprint(fd["kind"], "/", fd["cause"], " ", fd["service_addr"])] = fd
			}
			for _, want := range []string{
				"unanswered/timeout " + netip.AddrPortFrom(f.s, 8080).String(),
				"unreachable/rejected " + netip.AddrPortFrom(f.s, 8081).String(),
				"reset/closed " + netip.AddrPortFrom(f.s, 6380).String(),
			} {
				if got[want] == nil {
					t.Errorf("no finding %q in %v", want, stdout)
				}
			}
			if fd := got["unanswered/timeout "+netip.AddrPortFrom(f.s, 8080).String()]; fd != nil {
				// The client's pid (its comm may still be "ip": see
				// TestIntegrationFailuresFirewall).
				if a := fmt.Sprint(fd["advice"]); !strings.Contains(a, fmt.Sprintf("(pid %d) to", drop.Process.Pid)) {
					t.Errorf("advice %q does not name curl pid %d", a, drop.Process.Pid)
				}
			}
		})
	}
}
