package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
)

// ssSocket is what the sockets comparison checks for one socket.
type ssSocket struct {
	state, local, peer string
	recvQ, sendQ       string
	inode, pid         string // "0" / "" when none
	comm               string
}

var (
	ssUsers = regexp.MustCompile(`users:\(\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=\d+\)`)
	ssInode = regexp.MustCompile(`\bino:(\d+)`)
)

// parseSS parses `ss -tanpe` output, keyed by "local peer".
func parseSS(t *testing.T, out string) map[string]ssSocket {
	t.Helper()
	socks := map[string]ssSocket{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first {
			if len(f) == 0 || f[0] != "State" {
				t.Fatalf("ss header %q", sc.Text())
			}
			continue
		}
		if len(f) < 5 {
			t.Fatalf("ss line %q", sc.Text())
		}
		s := ssSocket{state: f[0], recvQ: f[1], sendQ: f[2], local: f[3], peer: f[4], inode: "0"}
		if m := ssUsers.FindStringSubmatch(sc.Text()); m != nil {
			s.comm, s.pid = m[1], m[2]
		}
		if m := ssInode.FindStringSubmatch(sc.Text()); m != nil {
			s.inode = m[1]
		}
		socks[s.local+" "+s.peer] = s
	}
	return socks
}

// ssAddr formats an address and port as ss prints them.
func ssAddr(addr string, port uint64) string {
	if strings.Contains(addr, ":") {
		addr = "[" + addr + "]"
	}
	if port == 0 {
		return addr + ":*"
	}
	return addr + ":" + strconv.FormatUint(port, 10)
}

// TestIntegrationSocketsMatchSS lists the sockets of a helper process in a
// fresh namespace with `rstwatch sockets --json` and with `ss -tanpe`, and
// compares them field by field.
func TestIntegrationSocketsMatchSS(t *testing.T) {
	ns := netnstest.New(t)
	helper := ns.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+helperSockets)
	var helperErr lockedBuffer
	helper.Stderr = &helperErr
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatalf("failed to make a pipe: %v", err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatalf("failed to make a pipe: %v", err)
	}
	if err := helper.Start(); err != nil {
		t.Fatalf("failed to start the helper: %v", err)
	}
	exited := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		exited <- helper.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("helper failed: %v: %s", err, helperErr.String())
			}
		case <-time.After(5 * time.Second):
			helper.Process.Kill()
			<-exited
			t.Errorf("helper did not exit when its stdin closed")
		}
	})
	select {
	case line := <-ready:
		if line != "ready\n" {
			t.Fatalf("helper said %q: %s", line, helperErr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("helper not ready within 10s: %s", helperErr.String())
	}
	pid := strconv.Itoa(helper.Process.Pid) // ip netns exec execs: same pid

	out, errOut, code := run(t, ns.Command(binary, "sockets", "--json"))
	if code != 0 || errOut != "" {
		t.Fatalf("rstwatch sockets: exit %d, stderr %q", code, errOut)
	}
	ssOut, ssErr, ssCode := run(t, ns.Command("ss", "-tanpe"))
	if ssCode != 0 {
		t.Fatalf("ss: exit %d, stderr %q", ssCode, ssErr)
	}

	got := map[string]ssSocket{}
	for _, m := range jsonLines(t, out) {
		s := ssSocket{
			state: fmt.Sprint(m["state"]),
			local: ssAddr(fmt.Sprint(m["local"]), num(t, m, "local_port")),
			peer:  ssAddr(fmt.Sprint(m["peer"]), num(t, m, "peer_port")),
			recvQ: strconv.FormatUint(num(t, m, "recv_q"), 10),
			sendQ: strconv.FormatUint(num(t, m, "send_q"), 10),
			inode: strconv.FormatUint(num(t, m, "inode"), 10),
		}
		if m["pid"] != nil {
			s.pid = strconv.FormatUint(num(t, m, "pid"), 10)
			s.comm = fmt.Sprint(m["comm"])
		} else if m["comm"] != nil || m["cgroup"] != nil || m["container"] != nil {
			t.Errorf("socket without pid has owner fields: %v", m)
		}
		if _, dup := got[s.local+" "+s.peer]; dup {
			t.Errorf("socket %s %s listed twice", s.local, s.peer)
		}
		got[s.local+" "+s.peer] = s
	}
	want := parseSS(t, ssOut)
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("ss lists %+v, rstwatch does not", w)
			continue
		}
		for _, f := range []struct{ name, got, want string }{
			{"state", g.state, w.state}, {"recv_q", g.recvQ, w.recvQ}, {"send_q", g.sendQ, w.sendQ},
			{"inode", g.inode, w.inode}, {"pid", g.pid, w.pid}, {"comm", g.comm, w.comm},
		} {
			if f.got != f.want {
				t.Errorf("%s: %s = %q, ss says %q", k, f.name, f.got, f.want)
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("rstwatch lists %+v, ss does not", g)
		}
	}

	// The helper's sockets are all there, attributed to it.
	var kinds []string
	for _, s := range got {
		owner := "none"
		if s.pid == pid {
			owner = "helper"
		}
		switch {
		case s.state == "LISTEN":
			kinds = append(kinds, "LISTEN "+s.local+" "+owner)
		case s.state == "ESTAB" && s.peer == "127.0.0.1:7300":
			kinds = append(kinds, "ESTAB client "+owner)
		case s.state == "ESTAB" && s.local == "127.0.0.1:7300":
			kinds = append(kinds, "ESTAB server "+owner)
		case s.state == "TIME-WAIT" && s.peer == "[::1]:7301":
			kinds = append(kinds, "TIME-WAIT "+owner+" inode "+s.inode)
		default:
			kinds = append(kinds, "unexpected "+s.state+" "+s.local+" "+s.peer)
		}
	}
	slices.Sort(kinds)
	wantKinds := []string{"ESTAB client helper", "ESTAB server helper", "LISTEN 127.0.0.1:7300 helper", "LISTEN [::1]:7301 helper", "TIME-WAIT none inode 0"}
	if !slices.Equal(kinds, wantKinds) {
		t.Errorf("sockets %v, want %v", kinds, wantKinds)
	}
	if c := got["127.0.0.1:7300 0.0.0.0:*"].comm; c != "rstwatch.test" {
		t.Errorf("listener's comm %q, want rstwatch.test", c)
	}

	// Filters and the text table.
	text, _, code := run(t, ns.Command(binary, "sockets", "-l"))
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "State ") || !strings.HasSuffix(lines[0], "Process") {
		t.Fatalf("sockets -l: exit %d:\n%s", code, text)
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "LISTEN ") || !strings.HasSuffix(l, " "+pid+"/rstwatch.test") {
			t.Errorf("sockets -l line %q, want a listener owned by %s/rstwatch.test", l, pid)
		}
	}
	port, _, code := run(t, ns.Command(binary, "sockets", "--json", "--port", "7301"))
	var states []string
	for _, m := range jsonLines(t, port) {
		states = append(states, fmt.Sprint(m["state"]))
	}
	slices.Sort(states)
	if code != 0 || strings.Join(states, " ") != "LISTEN TIME-WAIT" {
		t.Errorf("sockets --port 7301: exit %d, states %v, want LISTEN TIME-WAIT", code, states)
	}
}
