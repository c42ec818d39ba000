package explain

import (
	"net/netip"
	"time"

	"github.com/rstwatch/rstwatch/sniff"
)

// Cause is why a reset was sent. The zero value is invalid.
//
//enumcheck:exhaustive
type Cause uint8

// Causes, spelled as the JSON "cause" field.
const (
	_ Cause = iota
	// Refused: a stateless reset answering a SYN; on this host, nothing
	// listens on that address and port.
	Refused
	// Rejected: a stateless reset answering a SYN although a listener
	// exists: a firewall `reject with tcp-reset` or a policy.
	Rejected
	// Overflow: a stateless reset from a listener whose accept queue is
	// full (net.ipv4.tcp_abort_on_overflow=1).
	Overflow
	// Abort: a socket's reset: the sender's application aborted an
	// established connection (SO_LINGER 0, close with unread data, a
	// listener closed with pending connections).
	Abort
	// Stale: a stateless reset answering a segment of a connection the
	// sender has no socket for.
	Stale
	// Unknown: none of the above fits.
	Unknown
	// Timeout: a SYN (or SYN-ACK) sent again: nothing answered it
	// (failures.go).
	Timeout
	// Unreachable: an ICMP error said the host or network cannot be
	// reached (no route, host unreachable, time exceeded).
	Unreachable
	// Closed: a stateless reset from a socket its application had already
	// closed: data arrived after the sender's FIN.
	Closed
)

// String returns the JSON spelling.
func (c Cause) String() string {
	switch c {
	case Refused:
		return "refused"
	case Rejected:
		return "rejected"
	case Overflow:
		return "overflow"
	case Abort:
		return "abort"
	case Stale:
		return "stale"
	case Timeout:
		return "timeout"
	case Unreachable:
		return "unreachable"
	case Closed:
		return "closed"
	}
	return "unknown"
}

// Tri is a boolean that may be unknown (JSON null).
type Tri uint8

// Tri values.
const (
	Null Tri = iota
	False
	True
)

// TriOf converts a known boolean.
func TriOf(b bool) Tri {
	if b {
		return True
	}
	return False
}

// Seen tells where process information came from: a lookup at the moment
// of the reset, the table of recent sockets, or an inference from the
// listener on the socket's local port.
type Seen uint8

// Seen values, spelled as the JSON "seen" field.
const (
	_ Seen = iota
	// Live: the socket was found in the kernel when the reset came.
	Live
	// Recent: the socket was in the table of recently seen sockets.
	Recent
	// ViaListener: the socket's owner was never indexed (it lived too
	// briefly); the process named is the one process that owns the
	// listener on the socket's local port, which accepted it. A server
	// that hands connections to a forked child makes this wrong: the
	// child sent the reset.
	ViaListener
)

// String returns "live", "recent" or "listener".
func (s Seen) String() string {
	switch s {
	case Live:
		return "live"
	case ViaListener:
		return "listener"
	}
	return "recent"
}

// Proc is a socket and its owner. Known is false when nothing is known
// about the socket (JSON null); Owned is false when the socket is known but
// its process is not (another user's process without CAP_SYS_PTRACE, or a
// socket not yet accepted), and then PID, Comm and Cgroup are unknown.
type Proc struct {
	Known  bool
	Owned  bool
	PID    int
	Comm   string
	UID    uint32
	Inode  uint64
	State  string // the socket's TCP state as ss prints it
	Cgroup string
	Seen   Seen
}

// LastListener is who listened on a port that nobody listens on now.
type LastListener struct {
	Known bool
	PID   int
	Comm  string
	UID   uint32
	Until time.Time
}

// Sender is what is known about the host and socket that sent a reset.
type Sender struct {
	Local     Tri // the sender is this host (null offline)
	Listening Tri // a listener was bound to the sender's address:port (null unless local)
	// ListenChecked: Listening comes from a sock_diag dump of the
	// listening sockets made when the reset was explained, not from the
	// periodic snapshot alone (which may be Refresh old).
	ListenChecked bool
	Process       Proc
	// LastListener is set for a port nobody listens on that had a
	// listener recently.
	LastListener LastListener
}

// Target is what is known about the receiver of a reset.
type Target struct {
	Local   Tri
	Process Proc
}

// Verdict is the explanation of one reset, or of another failed
// connection (Kind).
type Verdict struct {
	// Kind is what the event reports: a reset, a handshake sent again or
	// an ICMP error; zero for a segment kept only for attribution.
	Kind  Kind
	Cause Cause
	// Attempts is, for KindUnanswered, how many times the SYN (or
	// SYN-ACK) has been sent, this one included (2 at the first
	// retransmission), and First when it was first sent.
	Attempts int
	First    time.Time
	Sender   Sender
	Target   Target
	Offline  bool // explained from a capture file: wire shape only
	// Sampled: attribution was over its budget (Config.Budget) when this
	// reset came, so it is explained from the packet alone, as Offline.
	Sampled bool
	// Listener is the listener on the sender's port, for a rejected,
	// overflowed or stale reset, or an abort by a listener's close.
	Listener Proc
	// Queue and Backlog are the listener's accept queue length and
	// backlog for an overflow, when known.
	Queue, Backlog uint32
}

// WireCause classifies a reset from the packet alone (KERNEL-NOTES facts
// 10-11). The Linux stack's stateless resets (tcp_v4_send_reset) carry
// window 0; a socket's reset (tcp_send_active_reset) carries its window.
// A stateless reset to a SYN is RST|ACK with sequence 0 and acknowledges
// the SYN; one to any segment carrying ACK is a bare RST whose sequence
// number is that segment's ack.
func WireCause(s *sniff.Segment) Cause {
	if !s.Flags.Has(sniff.FlagRST) {
		return Unknown
	}
	switch {
	case s.Window != 0:
		return Abort
	case s.Flags.Has(sniff.FlagACK) && s.Seq == 0:
		return Refused
	case !s.Flags.Has(sniff.FlagACK):
		return Stale
	}
	return Unknown
}

// FileCause classifies a reset read from a capture file: its wire shape,
// corrected by the handshake the file holds. accepted means the file has
// the sender's SYN-ACK for this connection, so the reset is not a refusal:
// the sender reset a connection it had accepted (an abort, or stale if it
// has the shape of a reset from no socket).
func FileCause(s *sniff.Segment, accepted bool) Cause {
	c := WireCause(s)
	if !accepted {
		return c
	}
	switch c {
	case Refused, Unknown:
		if s.Flags.Has(sniff.FlagACK) {
			return Abort
		}
		return Stale
	}
	return c
}

// addrIsLoopback covers 127/8 and ::1, which are local in every namespace.
func addrIsLoopback(a netip.Addr) bool { return a.Unmap().IsLoopback() }
