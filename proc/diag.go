package proc

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// ErrDumpInterrupted is wrapped by Dump's error when the kernel kept marking
// the dump NLM_F_DUMP_INTR (the socket tables changed while it was being
// read) after every retry. The sockets returned with it may be inconsistent
// or incomplete but are still useful.
var ErrDumpInterrupted = errors.New("proc: sock_diag dump interrupted")

// dumpAttempts is how many times Dump asks again after NLM_F_DUMP_INTR.
const dumpAttempts = 3

const (
	opDial   = "dial"
	opDump   = "dump"
	opLookup = "lookup"
	opClose  = "close"
	netDiag  = "sock_diag"
)

// Diag is a NETLINK_SOCK_DIAG socket used to list TCP sockets (sock_diag(7)).
// Its methods may be called from several goroutines; requests are
// serialised.
type Diag struct {
	mu     sync.Mutex
	closed bool
	c      diagConn // per-OS state
}

// Source lists TCP sockets. *Diag and FS (the /proc/net/tcp fallback)
// implement it.
type Source interface {
	// AppendDump appends the sockets of family (2: AF_INET, 10: AF_INET6)
	// whose state is in states to dst.
	AppendDump(dst []Socket, family uint8, states StateMask) ([]Socket, error)
}

var (
	_ Source = (*Diag)(nil)
	_ Source = FS{}
)

// DialDiag opens a NETLINK_SOCK_DIAG socket in the network namespace of the
// calling thread; wrap it in netns.Do to watch another namespace. No
// privilege is needed to dump TCP sockets.
func DialDiag() (*Diag, error) {
	d, err := dialDiag()
	if err != nil {
		return nil, opError(opDial, err)
	}
	return d, nil
}

// OpenSource returns a sock_diag Source, or p (reading /proc/net/tcp{,6}) if
// sock_diag cannot be opened, the order iproute2's ss uses. The returned
// Source is a *Diag the caller should Close in the first case.
func OpenSource(p FS) Source {
	if d, err := DialDiag(); err == nil {
		return d
	}
	return p
}

// Close closes the netlink socket.
func (d *Diag) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return opError(opClose, d.close())
}

// Dump returns the TCP sockets of family (2: AF_INET, 10: AF_INET6, Linux's
// numbers as in golang.org/x/sys/unix) whose state is in states, with one
// SOCK_DIAG_BY_FAMILY NLM_F_DUMP request. An AF_INET6 dump includes
// dual-stack sockets talking IPv4 (::ffff:a.b.c.d addresses); an AF_INET
// dump does not. If the error wraps ErrDumpInterrupted the sockets are
// returned anyway.
func (d *Diag) Dump(family uint8, states StateMask) ([]Socket, error) {
	return d.AppendDump(nil, family, states)
}

// AppendDump is like Dump but appends to dst.
func (d *Diag) AppendDump(dst []Socket, family uint8, states StateMask) ([]Socket, error) {
	n := len(dst)
	err := d.dumpEach(family, states, func() { dst = dst[:n] }, func(ss []Socket) { dst = append(dst, ss...) })
	return dst, err
}

// dumpEach runs a dump and hands fn the sockets of each datagram as it
// arrives (the slice is reused: valid only during the call), so that no
// more than a datagram's worth is held at once. begin is called before
// each attempt: after NLM_F_DUMP_INTR the dump starts again and fn sees
// sockets again.
func (d *Diag) dumpEach(family uint8, states StateMask, begin func(), fn func([]Socket)) error {
	if family != afInet && family != afInet6 {
		return opError(opDump, fmt.Errorf("unsupported address family %d", family))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return opError(opDump, net.ErrClosed)
	}
	for range dumpAttempts {
		begin()
		intr, err := d.dump(family, states, fn)
		if err != nil {
			return opError(opDump, err)
		}
		if !intr {
			return nil
		}
	}
	return opError(opDump, ErrDumpInterrupted)
}

// Lookup asks the kernel for the TCP socket with exactly this local and
// remote address and port (a request without NLM_F_DUMP and with
// INET_DIAG_NOCOOKIE). IPv4 and IPv4-mapped IPv6 tuples also find
// dual-stack AF_INET6 sockets. found is false if no socket has this 4-tuple;
// the kernel's answer for a listener that merely owns the local port is not
// a match.
func (d *Diag) Lookup(local, remote netip.AddrPort) (s Socket, found bool, err error) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	if !local.IsValid() || !remote.IsValid() || local.Addr().Is4() != remote.Addr().Is4() {
		return Socket{}, false, opError(opLookup, fmt.Errorf("invalid 4-tuple %v %v", local, remote))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return Socket{}, false, opError(opLookup, net.ErrClosed)
	}
	s, found, err = d.lookup(local, remote)
	if err != nil {
		return Socket{}, false, opError(opLookup, err)
	}
	if !found || !sameTuple(s, local, remote) {
		return Socket{}, false, nil
	}
	return s, true, nil
}

// sameTuple reports whether s has the 4-tuple local/remote, treating
// IPv4-mapped addresses as IPv4.
func sameTuple(s Socket, local, remote netip.AddrPort) bool {
	return s.Local.Port() == local.Port() && s.Remote.Port() == remote.Port() &&
		s.Local.Addr().Unmap() == local.Addr() && s.Remote.Addr().Unmap() == remote.Addr()
}

func opError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &net.OpError{Op: op, Net: netDiag, Err: err}
}
