package explain

import (
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/sniff"
)

// Kind is what an event reports, spelled as the JSON "kind" field.
//
//enumcheck:exhaustive
type Kind uint8

// Kinds.
const (
	_ Kind = iota
	// KindReset: a TCP reset.
	KindReset
	// KindUnanswered: a SYN or SYN-ACK sent again (same 4-tuple and
	// sequence number): nothing answered the first one.
	KindUnanswered
	// KindUnreachable: an ICMP or ICMPv6 error about a TCP connection.
	KindUnreachable
)

// String returns the JSON spelling.
func (k Kind) String() string {
	switch k {
	case KindReset:
		return "reset"
	case KindUnanswered:
		return "unanswered"
	case KindUnreachable:
		return "unreachable"
	}
	return ""
}

// Failure looks at e, a segment that is not a reset, and fills v when it
// tells of a failed connection: a SYN or SYN-ACK sent again (KindUnanswered,
// cause Timeout) or an ICMP error that refuses a connection (KindUnreachable;
// cause Rejected for port unreachable and administratively prohibited,
// Unreachable for no route, host or net unreachable and time exceeded). It
// records handshakes and FINs in t on the way, and reports whether e is a
// failure. For a failure, e's Src and Dst are turned to be the connection's
// client and server when e is (or quotes) a SYN-ACK. It never allocates.
func Failure(t *Tracker, e *sniff.Event, v *Verdict) bool {
	*v = Verdict{}
	if e.ICMP.Valid() {
		switch e.ICMP.Kind() {
		case sniff.ErrorPort, sniff.ErrorProhibited:
			v.Cause = Rejected
		case sniff.ErrorNoRoute:
			v.Cause = Unreachable
		default:
			return false // fragmentation needed and the like
		}
		v.Kind = KindUnreachable
		clientFirst(e)
		return true
	}
	switch {
	case e.Flags.Has(sniff.FlagSYN | sniff.FlagACK):
		t.Answered(&e.Segment)
	case e.Flags.Has(sniff.FlagFIN):
		t.FIN(&e.Segment)
		return false
	}
	n, first := t.Handshake(&e.Segment, e.Time)
	if n < 2 {
		return false
	}
	v.Kind, v.Cause, v.Attempts, v.First = KindUnanswered, Timeout, n, first
	clientFirst(e)
	return true
}

// clientFirst turns a SYN-ACK (or an error quoting one) around so that Src
// is the client.
func clientFirst(e *sniff.Event) {
	if e.Flags.Has(sniff.FlagSYN | sniff.FlagACK) {
		e.Src, e.Dst = e.Dst, e.Src
	}
}

// AfterClose turns a stale (or unknown) reset into Closed when its sender
// had already closed the connection and data came after: t saw the
// sender's FIN where the reset's sequence number points (this works on
// either side, and in a capture file), or, with x and a local sender, its
// socket was last seen in FIN-WAIT-1, FIN-WAIT-2, CLOSING or LAST-ACK
// (KERNEL-NOTES fact 21). x may be nil. It never allocates.
func AfterClose(t *Tracker, x *Explainer, e *sniff.Event, v *Verdict) {
	if v.Cause != Stale && v.Cause != Unknown || !e.Flags.Has(sniff.FlagRST) || e.Window != 0 {
		return
	}
	if t.AfterFIN(&e.Segment) {
		v.Cause = Closed
		return
	}
	if x == nil || v.Sender.Local != True || v.Sampled {
		return
	}
	if ent, ok := x.table.Conn(e.Src, e.Dst); ok {
		switch ent.State {
		case proc.FinWait1, proc.FinWait2, proc.Closing, proc.LastAck:
			v.Cause = Closed
			v.Sender.Process = procOf(ent, Recent)
		}
	}
}

// ExplainFailure adds to v, a failure from Failure, what the kernel knows:
// which ends are local, the local client's socket and process (a SYN-SENT
// socket lives for the whole wait, KERNEL-NOTES fact 20, so it is found
// live while SYNs are sent again) as the sender, and the local server's
// listener.
func (x *Explainer) ExplainFailure(e *sniff.Event, v *Verdict) {
	clientLocal, serverLocal := x.isLocal(e.Src.Addr()), x.isLocal(e.Dst.Addr())
	v.Sender.Local, v.Target.Local = TriOf(clientLocal), TriOf(serverLocal)
	if !clientLocal && !serverLocal {
		return
	}
	if !x.budget.allow(e.Time) {
		v.Sampled = true
		return
	}
	if clientLocal {
		v.Sender.Process = x.socketOwner(e.Src, e.Dst)
	}
	if serverLocal {
		if l, ok := x.table.Listening(e.Dst); ok {
			v.Listener = procOf(l, Recent)
			v.Queue, v.Backlog = l.RecvQ, l.SendQ
		}
	}
}
