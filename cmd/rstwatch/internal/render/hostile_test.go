package render

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe/safetest"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// TestHostileNames puts each hostile name everywhere a reset line carries
// outside text (interface, namespace, every process of the verdict, its
// cgroup and state) and checks that the text line and the JSON object are
// one terminal-safe line each, and the JSON is valid and reads back the
// name.
func TestHostileNames(t *testing.T) {
	for _, name := range safetest.Hostile {
		e, v := sampleEvent()
		e.Ifname = name
		p := explain.Proc{Known: true, Owned: true, PID: 7, Comm: name, UID: 1, Inode: 9, State: name, Cgroup: "/" + name, Seen: explain.Live}
		v.Sender.Process, v.Target.Process, v.Listener = p, p, p
		v.Sender.LastListener.Comm = name
		ns := &Namespace{Inode: 4026531840, Name: name}
		for _, cause := range []explain.Cause{explain.Refused, explain.Rejected, explain.Overflow, explain.Abort, explain.Stale} {
			v.Cause = cause
			for _, nsp := range []*Namespace{nil, ns} {
				safetest.AssertLine(t, AppendText(nil, e, v, nsp))
				b := AppendJSON(nil, e, v, nsp)
				safetest.AssertLine(t, b)
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatalf("%q: not JSON: %v\n%s", name, err, b)
				}
				if got, want := field(m, "target", "process", "comm"), perByteValid(name); got != want {
					t.Errorf("target.process.comm = %q, want %q", got, want)
				}
				if nsp != nil && field(m, "netns", "name") != perByteValid(name) {
					t.Errorf("netns.name = %q, want %q", field(m, "netns", "name"), name)
				}
			}
		}
	}
}

// TestHostileSockets does the same for the sockets table and JSON lines.
func TestHostileSockets(t *testing.T) {
	for _, name := range safetest.Hostile {
		l := SocketLine{Socket: proc.Socket{Local: netip.MustParseAddrPort("127.0.0.1:80"), Remote: netip.MustParseAddrPort("127.0.0.1:4000"), State: proc.Established},
			Owner: proc.Process{PID: 5, Comm: name, Cgroup: "/" + name}, Owned: true}
		table := AppendSocketTable(nil, []SocketLine{l, l})
		safetest.AssertTerminalSafe(t, table)
		if n := countLines(table); n != 3 {
			t.Errorf("%q: table has %d lines, want 3:\n%s", name, n, table)
		}
		b := AppendSocketJSON(nil, &l)
		safetest.AssertLine(t, b)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%q: not JSON: %v\n%s", name, err, b)
		}
		if m["comm"] != perByteValid(name) {
			t.Errorf("comm = %q, want %q", m["comm"], name)
		}
	}
}

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}

// perByteValid replaces each byte of invalid UTF-8 with U+FFFD, as a JSON
// decoder does.
func perByteValid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError for an invalid byte
		i += size
	}
	return b.String()
}
