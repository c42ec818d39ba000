package diagnose

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe/safetest"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

var t0 = time.Date(2026, 11, 21, 10, 55, 0, 0, time.UTC)

// reset is one captured reset of a scenario: from src to dst, at t0+at.
type reset struct {
	at       time.Duration
	src, dst string
	dir      sniff.Direction
	v        explain.Verdict
	seq, ack uint32
	window   uint16
	flags    sniff.TCPFlags  // 0: RST|ACK
	icmp     sniff.ICMPError // an ICMP error's (v.Kind KindUnreachable)
}

func (r *reset) event() *sniff.Event {
	flags := r.flags
	if flags == 0 {
		flags = sniff.FlagRST | sniff.FlagACK
	}
	return &sniff.Event{Time: t0.Add(r.at), Ifname: "eth0", Direction: r.dir,
		Segment: sniff.Segment{Src: netip.MustParseAddrPort(r.src), Dst: netip.MustParseAddrPort(r.dst), Flags: flags,
			Seq: r.seq, Ack: r.ack, Window: r.window, ICMP: r.icmp}}
}

// unanswered is the verdict of a SYN sent the n-th time by a local client.
func unanswered(n int, client explain.Proc) explain.Verdict {
	return explain.Verdict{Kind: explain.KindUnanswered, Cause: explain.Timeout, Attempts: n,
		Sender: explain.Sender{Local: explain.True, Process: client}, Target: explain.Target{Local: explain.False}}
}

// unreachable is the verdict of an ICMP error to a local client.
func unreachable(c explain.Cause) explain.Verdict {
	return explain.Verdict{Kind: explain.KindUnreachable, Cause: c,
		Sender: explain.Sender{Local: explain.True}, Target: explain.Target{Local: explain.False}}
}

func owned(pid int, comm string) explain.Proc {
	return explain.Proc{Known: true, Owned: true, PID: pid, Comm: comm, UID: 1000, State: "ESTAB", Seen: explain.Live}
}

func listener(addr string, queue, backlog uint32, pid int, comm string) explain.Listener {
	l := explain.Listener{Addr: netip.MustParseAddrPort(addr), Queue: queue, Backlog: backlog}
	if pid > 0 {
		l.Process = owned(pid, comm)
		l.Process.State = "LISTEN"
	}
	return l
}

// counts builds the start and end counters from the changes of a run.
func counts(delta map[string]uint64) (proc.Counters, proc.Counters) {
	c0, c1 := proc.Counters{}, proc.Counters{}
	for _, ci := range counters.Catalogue() {
		c0[ci.Key], c1[ci.Key] = 1000, 1000+delta[ci.Name]
	}
	return c0, c1
}

// hs is a captured handshake: client connects to server with initial
// sequence numbers isnC and isnS (no SYN-ACK when isnS is 0), at t0+at.
type hs struct {
	at             time.Duration
	client, server string
	isnC, isnS     uint32
}

func (h *hs) events() []*sniff.Event {
	c, s := netip.MustParseAddrPort(h.client), netip.MustParseAddrPort(h.server)
	out := []*sniff.Event{{Time: t0.Add(h.at), Ifname: "lo", Direction: sniff.Local,
		Segment: sniff.Segment{Src: c, Dst: s, Flags: sniff.FlagSYN, Seq: h.isnC}}}
	if h.isnS != 0 {
		out = append(out, &sniff.Event{Time: t0.Add(h.at), Ifname: "lo", Direction: sniff.Local,
			Segment: sniff.Segment{Src: s, Dst: c, Flags: sniff.FlagSYN | sniff.FlagACK, Seq: h.isnS, Ack: h.isnC + 1}})
	}
	return out
}

// socketReset is a socket's reset (window non-zero) from src to dst that
// carries seq and ack.
func socketReset(at time.Duration, src, dst string, seq, ack uint32, v explain.Verdict) reset {
	return reset{at: at, src: src, dst: dst, dir: sniff.Local, v: v, seq: seq, ack: ack, window: 512}
}

// TestScenarios feeds the diagnosis the handshakes, resets, listener
// samples, sysctls and counter changes of one situation each, as the
// capture, the explainer and /proc would, and pins the text and the JSON
// report as golden files (testdata/scenarios; -update rewrites them). It
// also checks the facts each scenario is about: the findings (cause,
// service, count), the notes, what it calls unexplained, whether it is
// abnormal, and words the text must or must not say.
func TestScenarios(t *testing.T) {
	checked := explain.Sender{Local: explain.True, Listening: explain.False, ListenChecked: true}
	for _, tt := range []struct {
		name       string
		handshakes []hs
		resets     []reset
		listeners  [][]explain.Listener
		synsAfter  []hs              // SYNs seen after the listener samples
		delta      map[string]uint64 // nil: no counters
		sysctls    map[string]string
		offline    bool
		alerts     []string

		findings    []string // "cause service_addr count"
		notes       []string
		unexplained []string // kinds
		abnormal    bool
		text        []string // parts of the text report
		notText     []string // words it must not say
	}{{
		name: "refused_by_a_remote_server",
		resets: []reset{
			{at: 0, src: "192.0.2.10:443", dst: "10.0.0.2:40000", dir: sniff.In, v: explain.Verdict{Cause: explain.Refused,
				Sender: explain.Sender{Local: explain.False}, Target: explain.Target{Local: explain.True, Process: owned(100, "curl")}}},
		},
		delta:    map[string]uint64{"AttemptFails": 1, "ActiveOpens": 1},
		findings: []string{"refused 192.0.2.10:443 1"},
		abnormal: true,
		text: []string{"the peer answered the SYN with a reset: nothing listens there, or a firewall rejects; this host cannot tell",
			"(port usually https: a guess)", "processes: client curl (pid 100)\n"},
		notText: []string{"nothing listens on"},
	}, {
		name: "refused_locally_checked",
		resets: []reset{
			{at: 0, src: "127.0.0.1:7000", dst: "127.0.0.1:50000", dir: sniff.Local, v: explain.Verdict{Cause: explain.Refused,
				Sender: checked, Target: explain.Target{Local: explain.True, Process: owned(300, "curl")}}},
			{at: time.Second, src: "127.0.0.1:7000", dst: "127.0.0.1:50001", dir: sniff.Local, v: explain.Verdict{Cause: explain.Refused,
				Sender: checked, Target: explain.Target{Local: explain.True, Process: owned(301, "curl")}}},
			{at: 2 * time.Second, src: "127.0.0.1:7000", dst: "127.0.0.1:50002", dir: sniff.Local, v: explain.Verdict{Cause: explain.Refused,
				Sender: checked, Target: explain.Target{Local: explain.True, Process: owned(302, "curl")}}},
		},
		delta:    map[string]uint64{"AttemptFails": 3, "OutRsts": 3},
		findings: []string{"refused 127.0.0.1:7000 3"},
		abnormal: true,
		text:     []string{"nothing listens on 127.0.0.1:7000 (the kernel's listening sockets were checked at each reset); clients: curl ×3 (pids 300, 301, 302)"},
	}, {
		name: "refused_locally_not_checked",
		resets: []reset{
			{at: 0, src: "127.0.0.1:7000", dst: "127.0.0.1:50000", dir: sniff.Local, v: explain.Verdict{Cause: explain.Refused,
				Sender: explain.Sender{Local: explain.True, Listening: explain.False}, Target: explain.Target{Local: explain.True}}},
		},
		delta:    map[string]uint64{"AttemptFails": 1, "OutRsts": 1},
		findings: []string{"refused 127.0.0.1:7000 1"},
		abnormal: true,
		notText:  []string{"nothing listens on"},
	}, {
		name:       "server_aborts_its_clients",
		handshakes: []hs{{0, "127.0.0.1:41000", "127.0.0.1:8080", 1000, 5000}, {0, "127.0.0.1:41001", "127.0.0.1:8080", 2000, 6000}, {0, "127.0.0.1:41002", "127.0.0.1:8080", 3000, 7000}},
		resets: []reset{
			socketReset(time.Second, "127.0.0.1:8080", "127.0.0.1:41000", 5001, 1010, explain.Verdict{Cause: explain.Abort,
				Sender: explain.Sender{Local: explain.True, Process: owned(50, "python3")}, Target: explain.Target{Local: explain.True, Process: owned(812, "curl")}}),
			socketReset(time.Second, "127.0.0.1:8080", "127.0.0.1:41001", 6001, 2010, explain.Verdict{Cause: explain.Abort,
				Sender: explain.Sender{Local: explain.True, Process: owned(50, "python3")}, Target: explain.Target{Local: explain.True, Process: owned(815, "curl")}}),
			socketReset(time.Second, "127.0.0.1:8080", "127.0.0.1:41002", 7001, 3010, explain.Verdict{Cause: explain.Abort,
				Sender: explain.Sender{Local: explain.True, Process: owned(50, "python3")}, Target: explain.Target{Local: explain.True, Process: owned(818, "curl")}}),
		},
		listeners: [][]explain.Listener{{listener("0.0.0.0:8080", 0, 128, 50, "python3")}},
		delta:     map[string]uint64{"OutRsts": 3, "EstabResets": 6, "TCPAbortOnData": 3},
		findings:  []string{"abort 127.0.0.1:8080 3"},
		abnormal:  true,
		text: []string{"python3 (pid 50) on 127.0.0.1:8080 aborted 3 connections of its clients", "clients: curl ×3 (pids 812, 815, 818)",
			"processes: client curl ×3 (pids 812, 815, 818); server python3 (pid 50)"},
	}, {
		name: "health_checker_resets_after_completed_exchanges",
		handshakes: []hs{{0, "127.0.0.1:45640", "127.0.0.1:9000", 100, 900}, {500 * time.Millisecond, "127.0.0.1:45641", "127.0.0.1:9000", 200, 800},
			{time.Second, "127.0.0.1:45642", "127.0.0.1:9000", 300, 700}},
		resets: []reset{
			// seq: request sent (40 bytes); ack: reply received (120 bytes).
			socketReset(10*time.Millisecond, "127.0.0.1:45640", "127.0.0.1:9000", 141, 1021, explain.Verdict{Cause: explain.Abort,
				Sender: explain.Sender{Local: explain.True, Process: owned(700, "haproxy")}, Target: explain.Target{Local: explain.True, Process: owned(60, "python3")}}),
			// The checker's short-lived sockets are not always attributed:
			// its resets are still one note.
			socketReset(510*time.Millisecond, "127.0.0.1:45641", "127.0.0.1:9000", 241, 921, explain.Verdict{Cause: explain.Abort,
				Sender: explain.Sender{Local: explain.True}, Target: explain.Target{Local: explain.True, Process: owned(60, "python3")}}),
			socketReset(1010*time.Millisecond, "127.0.0.1:45642", "127.0.0.1:9000", 341, 821, explain.Verdict{Cause: explain.Abort,
				Sender: explain.Sender{Local: explain.True}, Target: explain.Target{Local: explain.True, Process: owned(60, "python3")}}),
		},
		listeners: [][]explain.Listener{{listener("127.0.0.1:9000", 0, 128, 60, "python3")}},
		delta:     map[string]uint64{"OutRsts": 3, "EstabResets": 6, "TCPAbortOnData": 3},
		notes:     []string{"abort 127.0.0.1:9000 3"},
		abnormal:  false,
		text: []string{"Notes (expected resets, not failures):\n- abort 127.0.0.1:9000 (python3 listens there): 3",
			"haproxy (pid 700) reset 3 connections to 127.0.0.1:9000 after a completed exchange"},
		notText: []string{"Findings"},
	}, {
		// Real haproxy: after the check's reset, the backend's reply tail
		// or FIN still in flight reaches the closed port, which answers
		// with a stateless reset. Part of the same close: no finding.
		name:       "health_checker_with_a_trailing_stateless_reset",
		handshakes: []hs{{0, "127.0.0.1:45640", "127.0.0.1:9000", 100, 900}},
		resets: []reset{
			socketReset(10*time.Millisecond, "127.0.0.1:45640", "127.0.0.1:9000", 141, 1021, explain.Verdict{Cause: explain.Abort,
				Sender: explain.Sender{Local: explain.True, Process: owned(700, "haproxy")}, Target: explain.Target{Local: explain.True, Process: owned(60, "python3")}}),
			{at: 11 * time.Millisecond, src: "127.0.0.1:45640", dst: "127.0.0.1:9000", dir: sniff.Local, seq: 1022, flags: sniff.FlagRST,
				v: explain.Verdict{Cause: explain.Stale, Sender: explain.Sender{Local: explain.True, Listening: explain.False}, Target: explain.Target{Local: explain.True}}},
		},
		listeners: [][]explain.Listener{{listener("127.0.0.1:9000", 0, 128, 60, "python3")}},
		delta:     map[string]uint64{"OutRsts": 2, "EstabResets": 2, "TCPAbortOnData": 1},
		notes:     []string{"abort 127.0.0.1:9000 1"},
		abnormal:  false,
		text:      []string{"rstwatch diagnose: 2 resets in", "haproxy (pid 700) reset 1 connection to 127.0.0.1:9000 after a completed exchange (it had sent data and received the reply), after which the closed ports answered the server's segments still in flight with 1 stateless reset: a health checker"},
		notText:   []string{"Findings", "stale"},
	}, {
		name:       "client_aborts_before_the_reply",
		handshakes: []hs{{0, "127.0.0.1:45640", "127.0.0.1:9000", 100, 900}},
		resets: []reset{
			// The client sent its request; nothing came back (ack = ISN+1).
			socketReset(time.Second, "127.0.0.1:45640", "127.0.0.1:9000", 141, 901, explain.Verdict{Cause: explain.Abort,
				Sender: explain.Sender{Local: explain.True, Process: owned(700, "fetcher")}, Target: explain.Target{Local: explain.True, Process: owned(60, "python3")}}),
		},
		delta:    map[string]uint64{"OutRsts": 1, "EstabResets": 2},
		findings: []string{"abort 127.0.0.1:9000 1"},
		abnormal: true,
		text:     []string{"fetcher (pid 700) aborted 1 connection to 127.0.0.1:9000 (SO_LINGER 0 or closed with unread data) before the exchange was seen complete"},
	}, {
		name: "abort_roles_unknown",
		resets: []reset{
			{at: 0, src: "10.0.0.2:8080", dst: "192.0.2.50:61000", dir: sniff.Out, window: 100, v: explain.Verdict{Cause: explain.Abort,
				Sender: explain.Sender{Local: explain.True, Process: owned(50, "app")}, Target: explain.Target{Local: explain.False}}},
		},
		delta:    map[string]uint64{"OutRsts": 1, "EstabResets": 1},
		findings: []string{"abort 10.0.0.2:8080 1"},
		abnormal: true,
		text:     []string{"roles unknown: sender and receiver are by the reset's direction; 10.0.0.2:8080 is taken as the service end because its port is the lower", "processes: sender app (pid 50)"},
	}, {
		name: "stale_segments",
		resets: []reset{
			{at: 0, src: "10.0.0.2:22", dst: "192.0.2.9:5000", dir: sniff.Out, v: explain.Verdict{Cause: explain.Stale, Sender: explain.Sender{Local: explain.True}}},
			{at: time.Second, src: "10.0.0.2:22", dst: "192.0.2.9:5000", dir: sniff.Out, v: explain.Verdict{Cause: explain.Stale, Sender: explain.Sender{Local: explain.True}}},
			{at: 2 * time.Second, src: "10.0.0.2:22", dst: "192.0.2.9:5000", dir: sniff.Out, v: explain.Verdict{Cause: explain.Stale, Sender: explain.Sender{Local: explain.True}}},
		},
		delta:    map[string]uint64{"OutRsts": 3},
		findings: []string{"stale 10.0.0.2:22 3"},
		abnormal: true,
		text:     []string{"(0.60/s over the run)"},
	}, {
		name: "overflow_with_resets",
		resets: []reset{
			{at: 0, src: "10.0.0.2:80", dst: "192.0.2.1:3000", dir: sniff.Out, v: explain.Verdict{Cause: explain.Overflow,
				Sender: explain.Sender{Local: explain.True, Listening: explain.True}, Listener: owned(9, "nginx"), Queue: 129, Backlog: 128}},
		},
		listeners: [][]explain.Listener{{listener("10.0.0.2:80", 129, 128, 9, "nginx")}},
		delta:     map[string]uint64{"ListenOverflows": 1, "ListenDrops": 1, "EmbryonicRsts": 1, "OutRsts": 1},
		sysctls:   map[string]string{"net.ipv4.tcp_abort_on_overflow": "1", "net.core.somaxconn": "4096", "net.ipv4.tcp_max_syn_backlog": "512"},
		findings:  []string{"overflow 10.0.0.2:80 1"},
		abnormal:  true,
		text:      []string{"(here net.core.somaxconn is 4096, net.ipv4.tcp_max_syn_backlog is 512, net.ipv4.tcp_abort_on_overflow is 1;"},
	}, {
		name: "silent_overflow_blames_only_the_flooded_listener",
		// 8501 is full from an earlier run and idle; 8500 fills while SYNs arrive.
		listeners: [][]explain.Listener{{listener("0.0.0.0:8500", 1, 1, 90, "flooded"), listener("0.0.0.0:8501", 2, 1, 91, "idle")}},
		synsAfter: []hs{{time.Second, "127.0.0.1:40001", "127.0.0.1:8500", 1, 0}, {time.Second, "127.0.0.1:40002", "127.0.0.1:8500", 2, 0},
			{time.Second, "127.0.0.1:40003", "127.0.0.1:8500", 3, 0}},
		delta:       map[string]uint64{"ListenOverflows": 24, "ListenDrops": 24},
		sysctls:     map[string]string{"net.ipv4.tcp_abort_on_overflow": "0", "net.core.somaxconn": "4096"},
		findings:    []string{"overflow 0.0.0.0:8500 3"},
		unexplained: []string{"listen_overflow_without_reset"},
		abnormal:    true,
		text: []string{"listener 0.0.0.0:8500 (flooded pid 90) had a full accept queue 1/1 while 3 SYNs arrived for it",
			"ListenOverflows +24 in this network namespace with no overflow reset captured: net.ipv4.tcp_abort_on_overflow is 0"},
		notText: []string{"overflow 0.0.0.0:8501"},
	}, {
		name:        "syns_timing_out",
		delta:       map[string]uint64{"AttemptFails": 4, "TCPSynRetrans": 12, "ActiveOpens": 4},
		unexplained: []string{"failed_without_reset"},
		abnormal:    true,
		text:        []string{"0.80 failed connections/s", "meanwhile SYNs were retransmitted (TCPSynRetrans +12)"},
	}, {
		name:        "failed_without_retransmits",
		delta:       map[string]uint64{"AttemptFails": 1, "ActiveOpens": 1},
		unexplained: []string{"failed_without_reset"},
		abnormal:    true,
		text:        []string{"no SYN was retransmitted (TCPSynRetrans +0, TCPTimeouts +0): this report cannot tell why"},
		notText:     []string{"timed out or were dropped"},
	}, {
		name: "firewall_resets_not_counted",
		resets: []reset{
			{at: 0, src: "10.0.0.2:25", dst: "192.0.2.3:4000", dir: sniff.Out, v: explain.Verdict{Cause: explain.Rejected,
				Sender: explain.Sender{Local: explain.True, Listening: explain.True, ListenChecked: true}, Listener: owned(25, "postfix")}},
			{at: time.Second, src: "10.0.0.2:25", dst: "192.0.2.3:4001", dir: sniff.Out, v: explain.Verdict{Cause: explain.Rejected,
				Sender: explain.Sender{Local: explain.True, Listening: explain.True, ListenChecked: true}, Listener: owned(25, "postfix")}},
		},
		delta:       map[string]uint64{},
		findings:    []string{"rejected 10.0.0.2:25 2"},
		unexplained: []string{"resets_not_counted"},
		abnormal:    true,
		text:        []string{"a firewall or policy resets connections to 10.0.0.2:25 although postfix (pid 25) listens there", "- 2 resets left this host that its TCP stack did not count (OutRsts +0)"},
	}, {
		name:     "quiet",
		delta:    map[string]uint64{"ActiveOpens": 50},
		abnormal: false,
		text:     []string{"rstwatch diagnose: 0 resets in 5.00s\n0.00 failed connections/s", "\nNothing abnormal: "},
	}, {
		name: "no_kernel_counters",
		resets: []reset{
			{at: 0, src: "10.0.0.2:9000", dst: "10.0.0.3:1", dir: sniff.Out, v: explain.Verdict{Cause: explain.Unknown, Sender: explain.Sender{Local: explain.True}}},
		},
		findings: []string{"unknown 10.0.0.3:1 1"},
		abnormal: true,
		text:     []string{"failed connections unknown (no kernel counters), 0.20 resets/s sent", "look at them with `rstwatch watch --port 9000`"},
	}, {
		name:    "offline",
		offline: true,
		resets: []reset{
			{at: 0, src: "10.0.0.2:80", dst: "10.0.0.3:1000", dir: sniff.Out, v: explain.Verdict{Cause: explain.Refused, Offline: true}},
			{at: 2 * time.Second, src: "10.0.0.2:80", dst: "10.0.0.3:1001", dir: sniff.Out, v: explain.Verdict{Cause: explain.Refused, Offline: true}},
		},
		findings: []string{"refused 10.0.0.2:80 2"},
		abnormal: true,
		text:     []string{"rstwatch diagnose (offline, from the packets and handshakes in the file): 2 resets over 2.00s\n", "a capture file cannot tell"},
		notText:  []string{"nothing listens on"},
	}, {
		// Issue 3/7: a firewall drops the SYNs of curl's two connections.
		name: "unanswered_syns",
		resets: []reset{
			{at: time.Second, src: "10.0.0.1:40000", dst: "10.0.0.5:8080", dir: sniff.Out, flags: sniff.FlagSYN, v: unanswered(2, owned(812, "curl"))},
			{at: 2 * time.Second, src: "10.0.0.1:40000", dst: "10.0.0.5:8080", dir: sniff.Out, flags: sniff.FlagSYN, v: unanswered(3, owned(812, "curl"))},
			{at: 3 * time.Second, src: "10.0.0.1:40002", dst: "10.0.0.5:8080", dir: sniff.Out, flags: sniff.FlagSYN, v: unanswered(2, owned(812, "curl"))},
			{at: 4 * time.Second, src: "10.0.0.1:40002", dst: "10.0.0.5:8080", dir: sniff.Out, flags: sniff.FlagSYN, v: unanswered(3, owned(812, "curl"))},
		},
		delta:    map[string]uint64{"TCPSynRetrans": 4, "TCPTimeouts": 4, "ActiveOpens": 2},
		findings: []string{"timeout 10.0.0.5:8080 2"},
		abnormal: true,
		text: []string{"1. unanswered, timeout 10.0.0.5:8080",
			"connections from curl (pid 812) to 10.0.0.5:8080 time out: 2 connections unanswered (4 SYNs sent again) in 3 s. A firewall drops them"},
	}, {
		// nft reject: ICMP port unreachable from the server; more ICMP
		// errors reached the host than TCP accounts for.
		name: "icmp_rejected",
		resets: []reset{
			{at: time.Second, src: "10.0.0.1:40000", dst: "10.0.0.5:8080", dir: sniff.In, flags: sniff.FlagSYN,
				icmp: sniff.ICMPError{From: netip.MustParseAddr("10.0.0.5"), Type: 3, Code: 3}, v: unreachable(explain.Rejected)},
			{at: 2 * time.Second, src: "10.0.0.1:40002", dst: "10.0.0.5:8080", dir: sniff.In, flags: sniff.FlagSYN,
				icmp: sniff.ICMPError{From: netip.MustParseAddr("10.0.0.5"), Type: 3, Code: 3}, v: unreachable(explain.Rejected)},
		},
		delta:       map[string]uint64{"InDestUnreachs": 5, "ActiveOpens": 2},
		findings:    []string{"rejected 10.0.0.5:8080 2"},
		unexplained: []string{"icmp_unreachable_not_tcp"},
		abnormal:    true,
		text: []string{"1. unreachable, rejected 10.0.0.5:8080",
			"connections to 10.0.0.5:8080 are refused with ICMP (port unreachable, from 10.0.0.5 (the destination))",
			"3 ICMP destination-unreachable errors reached this host (Icmp InDestUnreachs +5, IPv4 only) that no captured TCP connection accounts for (2 did)"},
	}, {
		// A router has no route: ICMP host unreachable from it.
		name: "icmp_no_route",
		resets: []reset{
			{at: time.Second, src: "10.0.0.1:40000", dst: "10.9.0.5:443", dir: sniff.In, flags: sniff.FlagSYN,
				icmp: sniff.ICMPError{From: netip.MustParseAddr("10.0.0.254"), Type: 3, Code: 1}, v: unreachable(explain.Unreachable)},
		},
		delta:    map[string]uint64{"InDestUnreachs": 1, "AttemptFails": 1, "ActiveOpens": 1},
		findings: []string{"unreachable 10.9.0.5:443 1"},
		abnormal: true,
		text:     []string{"connections to 10.9.0.5:443 cannot be made: router 10.0.0.254 says host unreachable"},
		notText:  []string{"drew no captured reset"},
	}, {
		// redis past maxclients: it wrote an error, closed, then got data.
		name: "closed_then_data",
		resets: []reset{
			{at: time.Second, src: "10.0.0.5:6379", dst: "10.0.0.1:40000", dir: sniff.In, flags: sniff.FlagRST, seq: 9,
				v: explain.Verdict{Kind: explain.KindReset, Cause: explain.Closed, Sender: explain.Sender{Local: explain.False}, Target: explain.Target{Local: explain.True}}},
		},
		findings: []string{"closed 10.0.0.5:6379 1"},
		abnormal: true,
		text:     []string{"10.0.0.5 had closed 1 connection and then got data: the server closed first"},
	}, {
		name:     "alert_only",
		delta:    map[string]uint64{"ActiveOpens": 50},
		alerts:   []string{"ActiveOpens>5/s"},
		abnormal: true,
		text:     []string{"Alerts:\n- ALERT ActiveOpens>5/s: ActiveOpens rose by 50 in 5s (10.00/s); it counts connections this host started"},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			var c0, c1 proc.Counters
			if tt.delta != nil {
				c0, c1 = counts(tt.delta)
			}
			d := New(t0, c0)
			d.Offline, d.Sysctls = tt.offline, tt.sysctls
			for _, h := range tt.handshakes {
				for _, e := range h.events() {
					d.Observe(e)
				}
			}
			for _, ls := range tt.listeners {
				d.SampleListeners(ls)
			}
			for _, h := range tt.synsAfter {
				for _, e := range h.events() {
					d.Observe(e)
				}
			}
			for i := range tt.resets {
				d.Add(tt.resets[i].event(), &tt.resets[i].v)
			}
			d.End, d.C1, d.Uptime = t0.Add(5*time.Second), c1, 1e6
			if tt.offline {
				d.Start, d.End = d.FileSpan()
			}
			var rules []counters.Rule
			for _, a := range tt.alerts {
				r, err := counters.ParseRule(a)
				if err != nil {
					t.Fatalf("failed to parse %q: %v", a, err)
				}
				rules = append(rules, r)
			}
			d.EvalAlerts(rules)
			r := d.Report()

			keys := func(fs []Finding) string {
				var out []string
				for _, f := range fs {
					out = append(out, f.Cause+" "+f.ServiceAddr+" "+itoa(f.Count))
				}
				return strings.Join(out, "; ")
			}
			if got := keys(r.Findings); got != strings.Join(tt.findings, "; ") {
				t.Errorf("findings %q, want %q", got, tt.findings)
			}
			if got := keys(r.Notes); got != strings.Join(tt.notes, "; ") {
				t.Errorf("notes %q, want %q", got, tt.notes)
			}
			var kinds []string
			for _, u := range r.Unexplained {
				kinds = append(kinds, u.Kind)
			}
			if strings.Join(kinds, " ") != strings.Join(tt.unexplained, " ") {
				t.Errorf("unexplained %q, want %q", kinds, tt.unexplained)
			}
			if r.Abnormal != tt.abnormal {
				t.Errorf("abnormal %t, want %t", r.Abnormal, tt.abnormal)
			}
			text := r.Text()
			for _, want := range tt.text {
				if !strings.Contains(text, want) {
					t.Errorf("text lacks %q:\n%s", want, text)
				}
			}
			for _, bad := range tt.notText {
				if strings.Contains(text, bad) {
					t.Errorf("text says %q:\n%s", bad, text)
				}
			}
			for _, f := range append(r.Findings, r.Notes...) {
				if !strings.Contains(text, string(f.Advice)) {
					t.Errorf("text lacks the advice %q", f.Advice)
				}
			}
			checkJSON(t, r)
			golden(t, "scenarios/"+tt.name+".txt", []byte(text))
			var buf bytes.Buffer
			if err := r.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			golden(t, "scenarios/"+tt.name+".json", buf.Bytes())
		})
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// checkJSON writes r as JSON and checks that it is valid and carries the
// findings as the report has them.
func checkJSON(t *testing.T, r *Report) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatalf("failed to write JSON: %v", err)
	}
	if !json.Valid(buf.Bytes()) || !bytes.HasSuffix(buf.Bytes(), []byte("}\n")) {
		t.Fatalf("not one JSON document and a newline:\n%s", buf.Bytes())
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("failed to read back: %v", err)
	}
	fs, _ := m["findings"].([]any)
	if len(fs) != len(r.Findings) || m["abnormal"] != r.Abnormal {
		t.Errorf("JSON has %d findings, abnormal %v; report %d, %v", len(fs), m["abnormal"], len(r.Findings), r.Abnormal)
	}
	for i, f := range fs {
		if adv := f.(map[string]any)["advice"]; adv != string(r.Findings[i].Advice) {
			t.Errorf("JSON finding %d advice %q, want %q", i, adv, r.Findings[i].Advice)
		}
	}
	return m
}

// TestHostileReport names every process and interface of a report with a
// hostile name and checks that neither the text nor the JSON report
// writes a raw control, C1 or bidi rune, and that the JSON reads back the
// names (invalid UTF-8 replaced). The JSON went through encoding/json
// alone before, which writes U+202E and U+0085 raw.
func TestHostileReport(t *testing.T) {
	for _, name := range safetest.Hostile {
		d := New(t0, nil)
		d.SampleListeners([]explain.Listener{listener("127.0.0.1:80", 1, 128, 7, name)})
		ll := explain.LastListener{Known: true, PID: 8, Comm: name, UID: 1, Until: t0}
		for i, v := range []explain.Verdict{
			{Cause: explain.Refused, Sender: explain.Sender{Local: explain.True, LastListener: ll}, Target: explain.Target{Local: explain.True, Process: owned(9, name)}},
			{Cause: explain.Rejected, Sender: explain.Sender{Local: explain.True}, Listener: owned(7, name)},
			{Cause: explain.Overflow, Sender: explain.Sender{Local: explain.True}, Listener: owned(7, name), Queue: 2, Backlog: 1},
			{Cause: explain.Abort, Sender: explain.Sender{Local: explain.True, Process: owned(10, name)}},
		} {
			e := (&reset{src: "127.0.0.1:" + itoa(80+i), dst: "127.0.0.1:5000", dir: sniff.Local}).event()
			e.Ifname = name
			d.Add(e, &v)
		}
		d.End = t0.Add(time.Second)
		r := d.Report()
		safetest.AssertTerminalSafe(t, []byte(r.Text()))
		var buf bytes.Buffer
		if err := r.WriteJSON(&buf); err != nil {
			t.Fatalf("failed to write JSON: %v", err)
		}
		safetest.AssertTerminalSafe(t, buf.Bytes())
		m := checkJSON(t, r)
		want := perByteValid(name)
		ls := m["listeners"].([]any)[0].(map[string]any)
		if name != "" && ls["comm"] != want {
			t.Errorf("listeners[0].comm = %q, want %q", ls["comm"], want)
		}
		f0 := m["findings"].([]any)[0].(map[string]any)
		if name != "" && f0["ifnames"].([]any)[0] != want {
			t.Errorf("findings[0].ifnames = %q, want %q", f0["ifnames"], want)
		}
		for _, p := range f0["processes"].([]any) {
			if c := p.(map[string]any)["comm"]; c != want {
				t.Errorf("findings[0] process comm = %q, want %q", c, want)
			}
		}
	}
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

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	c := proc.Counters{"Tcp.AttemptFails": 10}
	p := NewProgress(&buf, func() (proc.Counters, error) { c["Tcp.AttemptFails"] += 5; return c, nil }, proc.Counters{"Tcp.AttemptFails": 10})
	p.Resets.Store(3)
	p.Show()
	line := buf.String()
	if !strings.HasPrefix(line, "\r") || !strings.Contains(line, "s elapsed, 3 resets, 0.0 failed connections/s") {
		t.Errorf("progress line %q", line)
	}
	buf.Reset()
	p.Clear()
	if got := buf.String(); got != "\r"+strings.Repeat(" ", len(line)-1)+"\r" {
		t.Errorf("clear wrote %q for a line of %d", got, len(line)-1)
	}
}
