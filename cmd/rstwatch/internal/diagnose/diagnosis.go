package diagnose

import (
	"net/netip"
	"time"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// Diagnosis accumulates what diagnose sees (resets with their verdicts,
// the handshakes, listener samples, counters) and turns it into a report.
// It does no I/O, so a test can feed it a fixed input. It is not safe for
// concurrent use.
type Diagnosis struct {
	// Start and End bound the run; the counters C0 and C1 are read at
	// those two moments (nil: not read), so every rate and every
	// comparison of counters with resets is over one window. Uptime is
	// the seconds since boot at the end, for "is this new" (0: unknown).
	Start, End time.Time
	C0, C1     proc.Counters
	Uptime     float64
	// Since, if set, drops segments captured before it: those the
	// capture held from before C0 was read.
	Since time.Time
	// Sysctls are the watched namespace's settings the advice quotes, by
	// their sysctl(8) name ("net.core.somaxconn"), as read; nil or a
	// missing name: not read, and then not quoted.
	Sysctls map[string]string

	Drops   uint64   // kernel drops of the capture
	Offline bool     // the resets come from a capture file
	Alerts  []string // alert rules that fired, in words (see EvalAlerts)

	groups     map[groupKey]*group
	order      []*group
	listeners  map[netip.AddrPort]*listenerSample
	handshakes map[connKey]*handshake

	sent, received int // resets whose sender / target is on this host
	syns           int // SYNs seen
}

// New returns an empty diagnosis of a run that started at start with the
// counters c0 (nil if they could not be read).
func New(start time.Time, c0 proc.Counters) *Diagnosis {
	return &Diagnosis{Start: start, C0: c0, groups: map[groupKey]*group{}, listeners: map[netip.AddrPort]*listenerSample{},
		handshakes: map[connKey]*handshake{}}
}

// connKey is a connection: who connected (sent the SYN) to whom.
type connKey struct{ client, server netip.AddrPort }

// handshake is what the SYN and the SYN-ACK of a connection said.
type handshake struct {
	clientISN, serverISN uint32
	answered             bool // the SYN-ACK was seen: serverISN is set
	at                   time.Time
	// closedBy is the note that counted the client's reset of this
	// completed exchange, if any: a stateless reset from the client's
	// port after it answers the server's last segments, part of the
	// same close.
	closedBy *group
}

// maxHandshakes bounds the handshakes kept; over it, those older than
// handshakeKeep are forgotten (their resets then fall back on the
// listener table and the ports).
const (
	maxHandshakes = 1 << 16
	handshakeKeep = 30 * time.Second
)

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// Observe records a segment of a handshake: a SYN (who connects where, the
// client's initial sequence number) or a SYN-ACK (the server's). A SYN to a
// listener whose accept queue was full at the last sample counts against
// that listener (see overflowFindings).
func (d *Diagnosis) Observe(e *sniff.Event) {
	if !d.Since.IsZero() && e.Time.Before(d.Since) {
		return
	}
	src, dst := unmap(e.Src), unmap(e.Dst)
	switch e.Flags & (sniff.FlagSYN | sniff.FlagACK | sniff.FlagRST) {
	case sniff.FlagSYN:
		d.syns++
		if l := d.listenerFor(dst); l != nil {
			l.syns++
			if l.lastFull {
				l.synsWhileFull++
			}
		}
		if len(d.handshakes) >= maxHandshakes {
			for k, h := range d.handshakes {
				if e.Time.Sub(h.at) > handshakeKeep {
					delete(d.handshakes, k)
				}
			}
			if len(d.handshakes) >= maxHandshakes {
				return
			}
		}
		d.handshakes[connKey{src, dst}] = &handshake{clientISN: e.Seq, at: e.Time}
	case sniff.FlagSYN | sniff.FlagACK:
		if h := d.handshakes[connKey{dst, src}]; h != nil && e.Ack == h.clientISN+1 {
			h.serverISN, h.answered = e.Seq, true
		}
	}
}

// listenerSample is what the samples showed of one listener.
type listenerSample struct {
	explain.Listener
	maxQueue      uint32
	full          bool // seen full at least once
	present       bool // in the latest sample: it listens now
	lastFull      bool // full at the latest sample
	syns          int  // SYNs seen for it
	synsWhileFull int  // SYNs seen for it while its latest sample was full
}

// SampleListeners records the listeners' accept queues.
func (d *Diagnosis) SampleListeners(ls []explain.Listener) {
	for _, s := range d.listeners {
		s.present, s.lastFull = false, false
	}
	for _, l := range ls {
		l.Addr = unmap(l.Addr)
		s := d.listeners[l.Addr]
		if s == nil {
			s = &listenerSample{Listener: l}
			d.listeners[l.Addr] = s
		}
		if l.Process.Owned {
			s.Process = l.Process
		}
		s.Backlog, s.Queue, s.present = l.Backlog, l.Queue, true
		s.maxQueue = max(s.maxQueue, l.Queue)
		s.lastFull = l.Backlog > 0 && l.Queue >= l.Backlog
		s.full = s.full || s.lastFull
	}
}

// listenerFor returns the sampled listener that accepts connections to a:
// bound to a itself, or to the wildcard address of its family.
func (d *Diagnosis) listenerFor(a netip.AddrPort) *listenerSample {
	if l := d.listeners[a]; l != nil {
		return l
	}
	for _, any := range []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
		if l := d.listeners[netip.AddrPortFrom(any, a.Port())]; l != nil && (any.Is4() == a.Addr().Is4() || any.Is6()) {
			return l
		}
	}
	return nil
}

// Roles, as the JSON "sender_role" spells them; "" means unknown.
const (
	roleClient = "client" // connected: sent the SYN
	roleServer = "server" // accepted: owns the listener
)

// How a finding knows its service end, as the JSON "service_from" spells it.
const (
	fromHandshake = "handshake" // the SYN (and SYN-ACK) were captured
	fromSYN       = "syn"       // the reset answered a SYN: its sender is the server end
	fromListener  = "listener"  // a listener is bound to one end's port
	fromPort      = "port"      // a guess: the lower port; roles unknown
)

// roles works out a reset's connection: the service end (the server's
// address:port), the sender's role and how that is known. It also says
// whether the reset closed a completed exchange (see completed).
func (d *Diagnosis) roles(e *sniff.Event, v *explain.Verdict) (service netip.AddrPort, senderRole, from string, completed bool) {
	src, dst := unmap(e.Src), unmap(e.Dst)
	if v.Kind > explain.KindReset {
		// An unanswered handshake or an ICMP error: src is the client
		// that sent the SYN (explain.Failure).
		return dst, roleClient, fromSYN, false
	}
	if h := d.handshakes[connKey{src, dst}]; h != nil {
		return dst, roleClient, fromHandshake, completedExchange(e, h)
	}
	if d.handshakes[connKey{dst, src}] != nil {
		return src, roleServer, fromHandshake, false
	}
	switch v.Cause {
	case explain.Refused, explain.Rejected, explain.Overflow:
		// Refused and rejected resets answer a SYN; an overflow reset
		// comes from a listener's port.
		return src, roleServer, fromSYN, false
	}
	if v.Sender.Listening == explain.True || v.Listener.Known {
		return src, roleServer, fromListener, false
	}
	if v.Sender.Local != explain.False {
		if l := d.listenerFor(src); l != nil {
			return l.Addr, roleServer, fromListener, false
		}
	}
	if v.Target.Local != explain.False {
		if l := d.listenerFor(dst); l != nil {
			return l.Addr, roleClient, fromListener, false
		}
	}
	if src.Port() < dst.Port() {
		return src, "", fromPort, false
	}
	return dst, "", fromPort, false
}

// completedExchange reports whether a client's reset closed a connection
// that had carried data both ways, all of it received: a socket's reset
// (tcp_send_active_reset) carries the client's next sequence number and
// what it acknowledged, so against the initial sequence numbers of the
// handshake seq-ISN_c-1 > 0 means the client had sent bytes and
// ack-ISN_s-1 > 0 that it had received the server's. A stateless reset
// (window 0) is no socket's close.
func completedExchange(e *sniff.Event, h *handshake) bool {
	if !h.answered || e.Window == 0 || !e.Flags.Has(sniff.FlagACK) {
		return false
	}
	sent := e.Seq - h.clientISN - 1
	got := e.Ack - h.serverISN - 1
	return sent > 0 && sent < 1<<31 && got > 0 && got < 1<<31
}

// Add records one explained reset.
func (d *Diagnosis) Add(e *sniff.Event, v *explain.Verdict) {
	if !d.Since.IsZero() && e.Time.Before(d.Since) {
		return
	}
	service, senderRole, from, completed := d.roles(e, v)
	h := d.handshakes[connKey{unmap(e.Src), unmap(e.Dst)}]
	if h != nil && h.closedBy != nil && !completed && senderRole == roleClient && e.Window == 0 {
		// The client reset this connection already, after a completed
		// exchange; the server's segments still in flight (its reply's
		// tail, its FIN) then reached a closed port and drew a stateless
		// reset (KERNEL-NOTES 11). It belongs to that close, not to a
		// finding of its own.
		h.closedBy.trailing++
		d.countSides(v)
		return
	}
	k := groupKey{kind: kindOf(v), cause: v.Cause.String(), service: service, senderRole: senderRole, expected: completed}
	if v.Sender.Local == explain.True && v.Sender.Process.Owned {
		k.program = v.Sender.Process.Comm
	}
	g := d.groups[k]
	if g == nil {
		g = newGroup(k, from, v.Sender.Local, e.Time)
		d.groups[k] = g
		d.order = append(d.order, g)
	}
	if d.addFailure(g, e, v) {
		return
	}
	d.countSides(v)
	g.add(e, v, from)
	if completed && h != nil {
		h.closedBy = g
	}
}

// countSides counts a reset as sent or received by this host.
func (d *Diagnosis) countSides(v *explain.Verdict) {
	if v.Sender.Local == explain.True {
		d.sent++
	}
	if v.Target.Local == explain.True {
		d.received++
	}
}
