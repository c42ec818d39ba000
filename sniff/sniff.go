package sniff

import (
	"fmt"
	"io"
	"strings"

	"github.com/rstwatch/rstwatch/filter"
)

// Defaults for Config.
const (
	DefaultBatch      = 64
	DefaultReadBuffer = 4 << 20
)

// Config configures Open. A nil *Config means defaults: every interface,
// resets only, this network namespace.
type Config struct {
	// Filter narrows the capture in the kernel (ports, hosts, SYNs for
	// attribution, snaplen). Its Interfaces field is set by Open from
	// Interfaces below.
	Filter filter.Options
	// Interfaces names the interfaces to capture on; empty means all,
	// including interfaces that appear after Open. A named interface that
	// goes away (deleted, or moved to another namespace) ends the capture
	// with an *InterfaceGoneError when it was the only one named; when
	// several are named the capture goes on with the others, tells Notify,
	// and takes the interface up again when one of that name returns.
	Interfaces []string
	// Notify, if set, receives one-line notices about the capture that do
	// not end it: a named interface went away or came back. It is called
	// from a goroutine of the Sniffer's and must not block for long.
	Notify func(msg string)
	// NetNS is the path of the network namespace to capture in (for example
	// /run/netns/NAME); empty means the caller's.
	NetNS string
	// Batch is how many packets one recvmmsg(2) may return (without the
	// ring).
	Batch int
	// ReadBuffer is the size of the TPACKET_V3 receive ring in bytes, or,
	// without the ring, the socket receive buffer (SO_RCVBUFFORCE when
	// permitted, else SO_RCVBUF capped by net.core.rmem_max).
	ReadBuffer int
	// NoRing reads with recvmmsg(2) into preallocated buffers instead of
	// a memory-mapped TPACKET_V3 ring. Open falls back to recvmmsg by
	// itself when the kernel refuses the ring.
	NoRing bool
}

// Stats are the capture's kernel counters, accumulated since Open (the
// kernel zeroes PACKET_STATISTICS on every read).
type Stats struct {
	// Packets is the number of packets that passed the filter, including
	// those dropped.
	Packets uint64
	// Drops is the number of packets the kernel dropped because the socket
	// buffer was full.
	Drops uint64
}

// Interface is an interface the capture covers.
type Interface struct {
	Index int
	Name  string
}

// UnknownInterfaceError reports an interface name that does not exist.
type UnknownInterfaceError struct {
	Name      string
	Available []string
}

func (e *UnknownInterfaceError) Error() string {
	return fmt.Sprintf("unknown interface %q (available: %s)", e.Name, strings.Join(e.Available, ", "))
}

// InterfaceGoneError ends a capture whose only named interface went away
// (deleted, or moved to another network namespace), as tcpdump does.
type InterfaceGoneError struct {
	Name string
}

func (e *InterfaceGoneError) Error() string {
	return fmt.Sprintf("interface %s went away", e.Name)
}

var _ io.Closer = (*Sniffer)(nil)

// Next returns the next TCP segment that the filter passed, decoded,
// skipping packets that do not decode and forwarded copies of a segment
// already returned. It blocks until a packet arrives, the read deadline
// passes (an error matching os.ErrDeadlineExceeded) or the Sniffer is
// closed, or, when the only interface named in Config.Interfaces goes away,
// an *InterfaceGoneError. e's Data and Payload alias the Sniffer's buffer until the next
// call; they stay readable after a Close from another goroutine. Next
// allocates nothing.
func (s *Sniffer) Next(e *Event) error {
	for {
		if s.TryNext(e) {
			return nil
		}
		if err := s.interfaceGone(); err != nil {
			return err
		}
		batch, err := s.read()
		if err != nil {
			// The link watcher wakes a blocked read with a past deadline.
			if gone := s.interfaceGone(); gone != nil {
				return gone
			}
			return err
		}
		s.batch, s.pos = batch, 0
	}
}

// TryNext is Next without reading: it fills e with the next segment of
// the batch read last and reports true, or reports false, without
// blocking, when that batch holds no more. e is as with Next.
func (s *Sniffer) TryNext(e *Event) bool {
	for s.pos < len(s.batch) {
		p := &s.batch[s.pos]
		s.pos++
		data := p.Data
		// Peel checks that the ethertype and the version nibble agree
		// (the kernel filter checks them separately); the IP stack
		// would drop a packet where they disagree.
		ip, err := e.Segment.DecodeLayers(data, p.Proto, &e.Encap)
		if err != nil {
			s.undecodable++
			continue
		}
		if p.VLAN {
			// The kernel took the outermost tag off the frame.
			e.Encap.PushVLAN(p.VLANTPID, p.VLANTCI)
		}
		e.Time, e.Ifindex, e.Data = p.Time, p.Ifindex, ip
		e.Len = p.Len - (len(data) - len(ip))
		e.Direction = DirectionOf(p.PktType, p.HAType)
		if s.dedup.Duplicate(e) {
			s.duplicates++
			continue
		}
		e.Ifname = s.ifName(p.Ifindex)
		return true
	}
	return false
}

// Undecodable returns how many captured packets did not decode as TCP, and
// Duplicates how many were forwarded copies suppressed by Next.
func (s *Sniffer) Undecodable() uint64 { return s.undecodable }

// Duplicates returns how many forwarded copies Next suppressed.
func (s *Sniffer) Duplicates() uint64 { return s.duplicates }

// Interfaces returns the interfaces the capture covers, as of Open.
func (s *Sniffer) Interfaces() []Interface { return s.ifaces }

// Buffered returns how many packets of the current batch Next has not
// returned yet; when it is 0 the next call may block, so a caller that
// buffers output flushes then.
func (s *Sniffer) Buffered() int { return len(s.batch) - s.pos }
