package explain_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// The decision tree of Explain, without privileges: the kernel's socket
// tables are fixtures (fakeKernel), the processes a fixture /proc.

// fakeKernel answers dumps and lookups from a fixed list of sockets.
type fakeKernel struct{ socks []proc.Socket }

func (k *fakeKernel) AppendDump(dst []proc.Socket, family uint8, states proc.StateMask) ([]proc.Socket, error) {
	for _, s := range k.socks {
		is6 := s.Local.Addr().Is6() && !s.Local.Addr().Is4In6()
		if (family == 10) != is6 || states&proc.Mask(s.State) == 0 {
			continue
		}
		dst = append(dst, s)
	}
	return dst, nil
}

func (k *fakeKernel) Lookup(local, remote netip.AddrPort) (proc.Socket, bool, error) {
	for _, s := range k.socks {
		if s.Local == local && s.Remote == remote && s.State != proc.Listen {
			return s, true, nil
		}
	}
	return proc.Socket{}, false, nil
}

func (k *fakeKernel) Close() error { return nil }

// procOwner is a fixture process holding socket inodes.
type procOwner struct {
	pid    int
	comm   string
	uid    uint32
	inodes []uint64
}

// fixtureProc writes a /proc with the given processes: comm, status (Uid),
// cgroup and fd/N -> socket:[inode].
func fixtureProc(t *testing.T, owners ...procOwner) proc.FS {
	t.Helper()
	root := t.TempDir()
	for _, o := range owners {
		dir := filepath.Join(root, strconv.Itoa(o.pid))
		if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{
			"comm":   o.comm + "\n",
			"status": fmt.Sprintf("Name:\t%s\nUid:\t%d\t%d\t%d\t%d\n", o.comm, o.uid, o.uid, o.uid, o.uid),
			"cgroup": "0::/system.slice/" + o.comm + ".service\n",
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for i, ino := range o.inodes {
			if err := os.Symlink(fmt.Sprintf("socket:[%d]", ino), filepath.Join(dir, "fd", strconv.Itoa(3+i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	fs, err := proc.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

var (
	local  = netip.MustParseAddr("192.0.2.10") // the watched namespace's address
	remote = netip.MustParseAddr("198.51.100.7")
)

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// rst builds a reset from src to dst of the given wire shape.
func rst(src, dst netip.AddrPort, shape string) *sniff.Event {
	e := &sniff.Event{Time: time.Now(), Segment: sniff.Segment{Family: sniff.IPv4, Src: src, Dst: dst}}
	switch shape {
	case "refusal": // stateless RST|ACK answering a SYN (KERNEL-NOTES 11)
		e.Flags, e.Ack = sniff.FlagRST|sniff.FlagACK, 1001
	case "socket": // a socket's RST|ACK, non-zero window (KERNEL-NOTES 10)
		e.Flags, e.Seq, e.Ack, e.Window = sniff.FlagRST|sniff.FlagACK, 5000, 7000, 512
	case "bare": // stateless bare RST answering a segment with ACK
		e.Flags, e.Seq = sniff.FlagRST, 7000
	}
	return e
}

func TestExplainTree(t *testing.T) {
	const (
		listenIno = 100
		connIno   = 101
		clientIno = 102
	)
	listener := func(port uint16, queue, backlog uint32) proc.Socket {
		return proc.Socket{Local: ap(local, port), State: proc.Listen, RecvQ: queue, SendQ: backlog, Inode: listenIno, UID: 33}
	}
	server := procOwner{pid: 311, comm: "nginx", uid: 33, inodes: []uint64{listenIno, connIno}}
	client := procOwner{pid: 812, comm: "curl", uid: 1000, inodes: []uint64{clientIno}}
	for _, tt := range []struct {
		name     string
		socks    []proc.Socket
		owners   []procOwner
		overflow uint64 // TcpExt.ListenOverflows after Open (0 at Open)
		e        *sniff.Event
		check    func(t *testing.T, v *explain.Verdict)
	}{{
		name: "refused_nothing_listens",
		e:    rst(ap(local, 7211), ap(remote, 40000), "refusal"),
		check: func(t *testing.T, v *explain.Verdict) {
			if v.Cause != explain.Refused || v.Sender.Listening != explain.False || !v.Sender.ListenChecked || v.Sender.Local != explain.True {
				t.Errorf("verdict %+v: want refused, checked that nothing listens", v)
			}
		},
	}, {
		name:   "rejected_listener_exists",
		socks:  []proc.Socket{listener(80, 0, 511)},
		owners: []procOwner{server},
		e:      rst(ap(local, 80), ap(remote, 40000), "refusal"),
		check: func(t *testing.T, v *explain.Verdict) {
			if v.Cause != explain.Rejected || v.Sender.Listening != explain.True || v.Listener.PID != 311 || v.Listener.Comm != "nginx" {
				t.Errorf("verdict %+v: want rejected with nginx (311) listening", v)
			}
		},
	}, {
		name:   "overflow_full_queue",
		socks:  []proc.Socket{listener(80, 512, 511)},
		owners: []procOwner{server},
		e:      rst(ap(local, 80), ap(remote, 40000), "bare"),
		check: func(t *testing.T, v *explain.Verdict) {
			if v.Cause != explain.Overflow || v.Queue != 512 || v.Backlog != 511 || v.Listener.PID != 311 {
				t.Errorf("verdict %+v: want overflow of nginx's full queue 512/511", v)
			}
		},
	}, {
		name:     "overflow_counter_rose",
		socks:    []proc.Socket{listener(80, 3, 511)},
		owners:   []procOwner{server},
		overflow: 2,
		e:        rst(ap(local, 80), ap(remote, 40000), "bare"),
		check: func(t *testing.T, v *explain.Verdict) {
			if v.Cause != explain.Overflow {
				t.Errorf("verdict %+v: want overflow (ListenOverflows rose)", v)
			}
		},
	}, {
		name:   "stale_no_socket",
		socks:  []proc.Socket{listener(80, 0, 511)},
		owners: []procOwner{server},
		e:      rst(ap(local, 9000), ap(remote, 40000), "bare"),
		check: func(t *testing.T, v *explain.Verdict) {
			if v.Cause != explain.Stale || v.Sender.Listening != explain.False || v.Sender.Process.Known {
				t.Errorf("verdict %+v: want stale, no listener, no socket", v)
			}
		},
	}, {
		name: "abort_socket_owner_live",
		socks: []proc.Socket{listener(80, 0, 511),
			{Local: ap(local, 80), Remote: ap(remote, 40000), State: proc.Established, Inode: connIno, UID: 33}},
		owners: []procOwner{server},
		e:      rst(ap(local, 80), ap(remote, 40000), "socket"),
		check: func(t *testing.T, v *explain.Verdict) {
			p := v.Sender.Process
			if v.Cause != explain.Abort || !p.Owned || p.PID != 311 || p.Comm != "nginx" || p.Inode != connIno || p.Seen != explain.Live {
				t.Errorf("verdict %+v: want an abort by nginx (311), its socket found live", v)
			}
		},
	}, {
		name:   "abort_owner_inferred_from_listener",
		socks:  []proc.Socket{listener(80, 0, 511)},
		owners: []procOwner{{pid: 311, comm: "nginx", uid: 33, inodes: []uint64{listenIno}}},
		e:      rst(ap(local, 80), ap(remote, 40000), "socket"),
		check: func(t *testing.T, v *explain.Verdict) {
			p := v.Sender.Process
			if v.Cause != explain.Abort || !p.Owned || p.PID != 311 || p.Seen != explain.ViaListener {
				t.Errorf("verdict %+v: want nginx (311) named, marked as inferred from the listener", v)
			}
		},
	}, {
		name:   "abort_remote_sender_target_named",
		socks:  []proc.Socket{{Local: ap(local, 40000), Remote: ap(remote, 443), State: proc.Established, Inode: clientIno, UID: 1000}},
		owners: []procOwner{client},
		e:      rst(ap(remote, 443), ap(local, 40000), "socket"),
		check: func(t *testing.T, v *explain.Verdict) {
			p := v.Target.Process
			if v.Cause != explain.Abort || v.Sender.Local != explain.False || v.Sender.Listening != explain.Null ||
				!p.Owned || p.PID != 812 || p.Comm != "curl" || p.UID != 1000 {
				t.Errorf("verdict %+v: want a remote abort, listening unknown, curl (812) the target", v)
			}
		},
	}, {
		name: "neither_end_local",
		e:    rst(ap(remote, 80), ap(netip.MustParseAddr("203.0.113.9"), 40000), "refusal"),
		check: func(t *testing.T, v *explain.Verdict) {
			if v.Cause != explain.Refused || v.Sender.Local != explain.False || v.Target.Local != explain.False || v.Sender.Listening != explain.Null {
				t.Errorf("verdict %+v: want the wire's cause, nothing known of either end", v)
			}
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKernel{socks: tt.socks}
			overflows := uint64(0)
			x, err := explain.Open(&explain.Config{
				Proc:     fixtureProc(t, tt.owners...),
				Dial:     func() (explain.Kernel, error) { return k, nil },
				Locals:   func() ([]netip.Addr, error) { return []netip.Addr{local}, nil },
				Counters: func() (proc.Counters, error) { return proc.Counters{"TcpExt.ListenOverflows": overflows}, nil },
				Budget:   -1,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			overflows = tt.overflow
			var v explain.Verdict
			x.Explain(tt.e, &v)
			tt.check(t, &v)
		})
	}
}
