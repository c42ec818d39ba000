package main

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/caps"
	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

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
			status, err := caps.ReadStatus(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
			if err != nil {
				t.Fatalf("failed to read rstwatch's capabilities: %v", err)
			}
			// Once armed, it has dropped even CAP_NET_RAW: the socket is
			// open, and without the owner capabilities nothing is left to
			// keep.
			if status["CapEff"] != 0 || status["CapBnd"]&^caps.Of(caps.NetRaw) != 0 {
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
