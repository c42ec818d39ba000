package explain

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/sniff"
)

var (
	cli = netip.MustParseAddrPort("10.0.0.1:40000")
	srv = netip.MustParseAddrPort("10.0.0.2:8080")
	t0  = time.Unix(1700000000, 0)
)

func seg(src, dst netip.AddrPort, flags sniff.TCPFlags, seq, ack uint32, at time.Time) *sniff.Event {
	e := &sniff.Event{Time: at}
	e.Src, e.Dst, e.Flags, e.Seq, e.Ack = src, dst, flags, seq, ack
	return e
}

func TestFailureSYNSentAgain(t *testing.T) {
	var tr Tracker
	var v Verdict
	if Failure(&tr, seg(cli, srv, sniff.FlagSYN, 100, 0, t0), &v) {
		t.Fatal("a first SYN is a failure")
	}
	if Failure(&tr, seg(cli, srv, sniff.FlagSYN, 999, 0, t0), &v) {
		t.Fatal("a SYN with another sequence number (a new connection) is a failure")
	}
	e := seg(cli, srv, sniff.FlagSYN, 100, 0, t0.Add(time.Second))
	if !Failure(&tr, e, &v) || v.Kind != KindUnanswered || v.Cause != Timeout || v.Attempts != 2 || !v.First.Equal(t0) {
		t.Fatalf("retransmitted SYN: %v %+v", v.Kind, v)
	}
	if !Failure(&tr, seg(cli, srv, sniff.FlagSYN, 100, 0, t0.Add(3*time.Second)), &v) || v.Attempts != 3 {
		t.Fatalf("third SYN: attempts %d", v.Attempts)
	}
	// An answer forgets it: the same SYN later is the first again.
	Failure(&tr, seg(srv, cli, sniff.FlagSYN|sniff.FlagACK, 5000, 101, t0.Add(4*time.Second)), &v)
	if Failure(&tr, seg(cli, srv, sniff.FlagSYN, 100, 0, t0.Add(5*time.Second)), &v) {
		t.Fatal("a SYN after its SYN-ACK counted as sent again")
	}
}

func TestFailureSYNACKSentAgain(t *testing.T) {
	var tr Tracker
	var v Verdict
	Failure(&tr, seg(srv, cli, sniff.FlagSYN|sniff.FlagACK, 5000, 101, t0), &v)
	e := seg(srv, cli, sniff.FlagSYN|sniff.FlagACK, 5000, 101, t0.Add(time.Second))
	if !Failure(&tr, e, &v) || v.Kind != KindUnanswered || v.Attempts != 2 {
		t.Fatalf("SYN-ACK sent again: %+v", v)
	}
	if e.Src != cli || e.Dst != srv {
		t.Fatalf("event %v > %v, want client first", e.Src, e.Dst)
	}
}

func TestFailureICMP(t *testing.T) {
	for _, tt := range []struct {
		typ, code uint8
		v6        bool
		want      Cause // 0: not a failure
	}{
		{3, 3, false, Rejected}, {3, 13, false, Rejected}, {3, 1, false, Unreachable}, {11, 0, false, Unreachable},
		{3, 4, false, 0}, {1, 4, true, Rejected}, {1, 1, true, Rejected}, {1, 0, true, Unreachable}, {1, 3, true, Unreachable},
	} {
		var tr Tracker
		var v Verdict
		e := seg(cli, srv, sniff.FlagSYN, 100, 0, t0)
		e.ICMP = sniff.ICMPError{From: srv.Addr(), To: cli.Addr(), Type: tt.typ, Code: tt.code, V6: tt.v6}
		got := Failure(&tr, e, &v)
		if got != (tt.want != 0) || got && (v.Cause != tt.want || v.Kind != KindUnreachable) {
			t.Errorf("type %d code %d v6 %v: failure %v cause %v, want %v", tt.typ, tt.code, tt.v6, got, v.Cause, tt.want)
		}
	}
}

func TestAfterClose(t *testing.T) {
	var tr Tracker
	var v Verdict
	// The server sends 10 bytes and its FIN at 5010; the client acks it.
	Failure(&tr, func() *sniff.Event {
		e := seg(srv, cli, sniff.FlagFIN|sniff.FlagACK|sniff.FlagPSH, 5000, 200, t0)
		e.PayloadLen = 10
		return e
	}(), &v)
	for _, tt := range []struct {
		seq  uint32
		want Cause
	}{{5011, Closed}, {5010, Closed}, {7000, Stale}} {
		e := seg(srv, cli, sniff.FlagRST, tt.seq, 0, t0.Add(time.Second))
		v = Verdict{Kind: KindReset, Cause: WireCause(&e.Segment)}
		AfterClose(&tr, nil, e, &v)
		if v.Cause != tt.want {
			t.Errorf("reset at %d: %v, want %v", tt.seq, v.Cause, tt.want)
		}
	}
	// The client's own FIN does not make the server's reset closed.
	var tr2 Tracker
	Failure(&tr2, seg(cli, srv, sniff.FlagFIN|sniff.FlagACK, 5010, 0, t0), &v)
	e := seg(srv, cli, sniff.FlagRST, 5011, 0, t0)
	v = Verdict{Kind: KindReset, Cause: Stale}
	if AfterClose(&tr2, nil, e, &v); v.Cause != Stale {
		t.Errorf("after the peer's FIN: %v, want stale", v.Cause)
	}
}

// TestTrackerAllocs: the tracker is on the capture path, for every SYN,
// SYN-ACK, FIN and reset.
func TestTrackerAllocs(t *testing.T) {
	var tr Tracker
	var v Verdict
	syn := seg(cli, srv, sniff.FlagSYN, 100, 0, t0)
	fin := seg(srv, cli, sniff.FlagFIN|sniff.FlagACK, 5000, 0, t0)
	rst := seg(srv, cli, sniff.FlagRST, 5001, 0, t0)
	icmp := seg(cli, srv, sniff.FlagSYN, 100, 0, t0)
	icmp.ICMP = sniff.ICMPError{From: srv.Addr(), To: cli.Addr(), Type: 3, Code: 3}
	n := testing.AllocsPerRun(1000, func() {
		Failure(&tr, syn, &v)
		Failure(&tr, fin, &v)
		Failure(&tr, icmp, &v)
		v = Verdict{Kind: KindReset, Cause: Stale}
		AfterClose(&tr, nil, rst, &v)
	})
	if n != 0 {
		t.Fatalf("%v allocations per round, want 0", n)
	}
}
