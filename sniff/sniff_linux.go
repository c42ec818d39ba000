package sniff

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/proc/netns"
)

// Sniffer is a capture of TCP resets on one or all interfaces of a network
// namespace. Its methods must be called from one goroutine, except Close and
// SetReadDeadline, which may be called from any.
type Sniffer struct {
	conn *packet.Conn
	rc   syscall.RawConn

	netns  string
	ifaces []Interface
	names  map[int]string
	// lastIf and lastName are the interface of the previous packet: a
	// storm comes on one interface, and this spares a map lookup a
	// packet. setNames clears lastName.
	lastIf   int
	lastName string
	// namesAt is when names was last refreshed for an unknown index.
	namesAt time.Time

	// Preallocated recvmmsg(2) state: one mmsghdr, iovec, sockaddr_ll and
	// control buffer per batch slot, all pointing into bufs and ctrl.
	snaplen int
	msgs    []unix.Mmsghdr
	iovs    []unix.Iovec
	addrs   []unix.RawSockaddrLinklayer
	bufs    []byte
	ctrl    []byte
	ctrlLen int
	packets []Packet
	recvFn  func(fd uintptr) bool
	nread   int
	rerr    syscall.Errno

	// The TPACKET_V3 ring, when in use (ring_linux.go). read holds ringMu
	// while it reads the ring, so Close unmaps it only between calls;
	// ringCopy holds the packets of the last block read, out of the ring.
	useRing  bool
	closed   atomic.Bool
	ringMu   sync.Mutex
	ring     *ring
	ringCopy []byte

	// watch follows the named interfaces (linkwatch_linux.go); gone is
	// set when the only one went away.
	watch *linkWatch
	gone  atomic.Pointer[InterfaceGoneError]

	batch       []Packet
	pos         int
	dedup       Dedup
	undecodable uint64
	duplicates  uint64
	stats       Stats
}

// Open starts a capture as configured by cfg. It needs CAP_NET_RAW (errors
// match os.ErrPermission without it), and CAP_SYS_ADMIN when cfg.NetNS is
// set. An unknown interface name gives an *UnknownInterfaceError.
func Open(cfg *Config) (*Sniffer, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	c := *cfg
	if c.Batch <= 0 {
		c.Batch = DefaultBatch
	}
	if c.ReadBuffer <= 0 {
		c.ReadBuffer = DefaultReadBuffer
	}
	if c.Filter.Snaplen == 0 {
		c.Filter.Snaplen = filter.DefaultSnaplen
	}

	s := &Sniffer{netns: c.NetNS, snaplen: int(c.Filter.Snaplen)}
	var links *os.File
	err := netns.Do(c.NetNS, func() error {
		// Interface names and the sockets all belong to the namespace.
		if len(c.Interfaces) > 0 {
			var err error
			if links, err = openLinkSocket(); err != nil {
				return err
			}
		}
		all, err := net.Interfaces()
		if err != nil {
			return fmt.Errorf("list interfaces: %w", err)
		}
		s.setNames(all)
		if s.ifaces, err = pick(all, c.Interfaces); err != nil {
			return err
		}
		if len(c.Interfaces) > 0 {
			c.Filter.Interfaces = nil
			for _, ifi := range s.ifaces {
				c.Filter.Interfaces = append(c.Filter.Interfaces, ifi.Index)
			}
		}
		prog, err := filter.Assemble(c.Filter)
		if err != nil {
			return fmt.Errorf("build filter: %w", err)
		}
		// One socket on ifindex 0 sees every interface, present and
		// future; the filter is attached before bind(2), so nothing
		// unfiltered is ever queued (KERNEL-NOTES fact 1).
		s.conn, err = packet.Listen(&net.Interface{Index: 0}, packet.Datagram, unix.ETH_P_ALL, &packet.Config{Filter: prog})
		return err
	})
	if err == nil {
		if err = s.setup(c); err != nil {
			s.conn.Close()
		}
	}
	if err != nil {
		if links != nil {
			links.Close()
		}
		return nil, err
	}
	if links != nil {
		s.startLinkWatch(links, s.ifaces, c.Filter, c.Notify)
	}
	return s, nil
}

func pick(all []net.Interface, names []string) ([]Interface, error) {
	if len(names) == 0 {
		out := make([]Interface, 0, len(all))
		for _, ifi := range all {
			out = append(out, Interface{Index: ifi.Index, Name: ifi.Name})
		}
		return out, nil
	}
	var out []Interface
	for _, name := range names {
		found := false
		for _, ifi := range all {
			if ifi.Name == name {
				out = append(out, Interface{Index: ifi.Index, Name: ifi.Name})
				found = true
				break
			}
		}
		if !found {
			avail := make([]string, 0, len(all))
			for _, ifi := range all {
				avail = append(avail, ifi.Name)
			}
			sort.Strings(avail)
			return nil, &UnknownInterfaceError{Name: name, Available: avail}
		}
	}
	return out, nil
}

func (s *Sniffer) setNames(all []net.Interface) {
	s.lastName = ""
	s.names = make(map[int]string, len(all))
	for _, ifi := range all {
		s.names[ifi.Index] = ifi.Name
	}
}

// setup sets socket options and preallocates the batch buffers.
func (s *Sniffer) setup(c Config) error {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return err
	}
	s.rc = rc
	var serr error
	err = rc.Control(func(fd uintptr) {
		// Kernel receive timestamps in nanoseconds, as control messages.
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			serr = os.NewSyscallError("setsockopt SO_TIMESTAMPNS", err)
			return
		}
		// PACKET_AUXDATA carries the length on the wire: when the filter's
		// snaplen cuts a packet the kernel trims the skb itself, so
		// MSG_TRUNC alone would report the cut length.
		if err := unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			serr = os.NewSyscallError("setsockopt PACKET_AUXDATA", err)
			return
		}
		// SO_RCVBUFFORCE ignores net.core.rmem_max but needs
		// CAP_NET_ADMIN; fall back to the capped SO_RCVBUF.
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, c.ReadBuffer) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, c.ReadBuffer)
		}
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	if !c.NoRing && s.setupRing(c.ReadBuffer) == nil {
		s.useRing = true
		return nil
	}

	n := c.Batch
	s.msgs = make([]unix.Mmsghdr, n)
	s.iovs = make([]unix.Iovec, n)
	s.addrs = make([]unix.RawSockaddrLinklayer, n)
	s.bufs = make([]byte, n*s.snaplen)
	s.ctrlLen = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))) + unix.CmsgSpace(sizeofAuxdata) + 32
	// Control buffers hold cmsghdrs, which need word alignment.
	words := make([]uint64, (n*s.ctrlLen+7)/8)
	s.ctrl = unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	s.packets = make([]Packet, n)
	for i := range n {
		s.iovs[i].Base = &s.bufs[i*s.snaplen]
		s.iovs[i].SetLen(s.snaplen)
		h := &s.msgs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&s.addrs[i]))
		h.Iov = &s.iovs[i]
		h.SetIovlen(1)
		h.Control = &s.ctrl[i*s.ctrlLen]
	}
	// The closure is built once so the read path does not allocate.
	s.recvFn = s.recv
	return nil
}

// recv runs recvmmsg(2) without blocking; returning false parks the
// goroutine on the runtime poller until the socket is readable.
func (s *Sniffer) recv(fd uintptr) bool {
	for i := range s.msgs {
		s.msgs[i].Hdr.Namelen = unix.SizeofSockaddrLinklayer
		s.msgs[i].Hdr.SetControllen(s.ctrlLen)
		s.msgs[i].Hdr.Flags = 0
		s.msgs[i].Len = 0
	}
	for {
		// MSG_TRUNC makes each msg_len the packet's full length even when
		// it was cut to the snaplen (packet(7)).
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.msgs[0])),
			uintptr(len(s.msgs)), unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
		switch e {
		case 0:
			s.nread, s.rerr = int(n), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			s.nread, s.rerr = 0, e
			return true
		}
	}
}

func (s *Sniffer) read() ([]Packet, error) {
	if s.useRing {
		if err := s.holdRing(); err != nil {
			return nil, err
		}
		defer s.releaseRing()
		return s.readRing()
	}
	if err := s.rc.Read(s.recvFn); err != nil {
		return nil, s.readErr(err)
	}
	if s.rerr != 0 {
		return nil, &net.OpError{Op: "read", Net: "packet", Err: os.NewSyscallError("recvmmsg", s.rerr)}
	}
	for i := range s.nread {
		m := &s.msgs[i]
		p := &s.packets[i]
		a := &s.addrs[i]
		p.Data = s.bufs[i*s.snaplen : i*s.snaplen+min(int(m.Len), s.snaplen)]
		p.Ifindex = int(a.Ifindex)
		p.PktType = a.Pkttype
		p.HAType = a.Hatype
		// sll_protocol is stored in network byte order (packet(7)).
		p.Proto = binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&a.Protocol))[:])
		ctrl := s.ctrl[i*s.ctrlLen : i*s.ctrlLen+int(m.Hdr.Controllen)]
		p.Time, p.Len = parseCmsgs(ctrl, p)
		if p.Time.IsZero() {
			p.Time = time.Now()
		}
		if p.Len < int(m.Len) {
			p.Len = int(m.Len)
		}
	}
	return s.packets[:s.nread], nil
}

// parseCmsgs returns the SCM_TIMESTAMPNS time and the PACKET_AUXDATA
// length on the wire from the control messages in b (zero values when
// absent), and sets p's VLAN fields from PACKET_AUXDATA.
func parseCmsgs(b []byte, p *Packet) (t time.Time, wireLen int) {
	p.VLAN, p.VLANTCI, p.VLANTPID = false, 0, 0
	hdr := unix.CmsgLen(0)
	for len(b) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < hdr || l > len(b) {
			break
		}
		data := b[hdr:l]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			t = time.Unix(int64(ts.Sec), int64(ts.Nsec))
		case h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && len(data) >= sizeofAuxdata:
			aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&data[0]))
			wireLen = int(aux.Len)
			p.VLAN, p.VLANTCI, p.VLANTPID = vlanTag(aux.Status, aux.Vlan_tci, aux.Vlan_tpid)
		}
		next := unix.CmsgSpace(l - hdr)
		if next >= len(b) {
			break
		}
		b = b[next:]
	}
	return t, wireLen
}

// SetReadDeadline makes a blocked or future Next return an error matching
// os.ErrDeadlineExceeded once t has passed. It may be called from any
// goroutine, which is how a capture is stopped.
func (s *Sniffer) SetReadDeadline(t time.Time) error { return s.conn.SetReadDeadline(t) }

// Stats returns the kernel's counters accumulated since Open.
func (s *Sniffer) Stats() (Stats, error) {
	st, err := s.conn.Stats()
	if err != nil {
		return s.stats, err
	}
	s.stats.Packets += uint64(st.Packets)
	s.stats.Drops += uint64(st.Drops)
	return s.stats, nil
}

// ifName is IfName for the packet being returned by Next.
func (s *Sniffer) ifName(i int) string {
	if i != s.lastIf || s.lastName == "" {
		name := s.IfName(i)
		s.lastIf, s.lastName = i, name
	}
	return s.lastName
}

// IfName returns the name of interface index i in the captured namespace.
// An index that appeared after Open is looked up again, at most once a
// second; failing that the name is "ifN".
func (s *Sniffer) IfName(i int) string {
	if name, ok := s.names[i]; ok {
		return name
	}
	// A named interface that came back has a new index, and the link
	// watch has its name already.
	if s.watch != nil {
		if name, ok := s.watch.name(i); ok {
			s.names[i] = name
			return name
		}
	}
	if time.Since(s.namesAt) > time.Second {
		s.namesAt = time.Now()
		_ = netns.Do(s.netns, func() error {
			all, err := net.Interfaces()
			if err == nil {
				s.setNames(all)
			}
			return err
		})
		if name, ok := s.names[i]; ok {
			return name
		}
	}
	name := "if" + strconv.Itoa(i)
	s.names[i] = name
	return name
}

// readErr makes a read error after Close match net.ErrClosed: the raw
// socket reports its own "use of closed file", which matches nothing.
func (s *Sniffer) readErr(err error) error {
	if s.closed.Load() {
		return errRead(net.ErrClosed)
	}
	return err
}

func errRead(err error) error { return &net.OpError{Op: "read", Net: "packet", Err: err} }

// Close ends the capture. It may be called from any goroutine: it wakes a
// Next blocked there and waits for it to return before unmapping the ring.
// Next then returns an error matching net.ErrClosed.
func (s *Sniffer) Close() error {
	s.closed.Store(true)
	if s.watch != nil {
		s.watch.stop()
	}
	err := s.conn.Close()
	if s.useRing {
		if rerr := s.closeRing(); err == nil {
			err = rerr
		}
	}
	return err
}

// sizeofAuxdata is sizeof(struct tpacket_auxdata), which x/sys/unix does
// not export.
const sizeofAuxdata = int(unsafe.Sizeof(unix.TpacketAuxdata{}))

// vlanTag reads the VLAN tag the kernel reports beside a packet, in a
// tpacket3_hdr or tpacket_auxdata (packet(7)).
func vlanTag(status uint32, tci, tpid uint16) (ok bool, t, p uint16) {
	if status&unix.TP_STATUS_VLAN_VALID == 0 {
		return false, 0, 0
	}
	if status&unix.TP_STATUS_VLAN_TPID_VALID == 0 {
		tpid = 0
	}
	return true, tci, tpid
}
