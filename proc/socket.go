package proc

import (
	"errors"
	"net/netip"
	"strconv"
)

// ErrParse is wrapped by every error a parser in this package returns for
// malformed input; the message quotes the offending line or field.
var ErrParse = errors.New("proc: parse error")

// Linux address family numbers as sock_diag(7) and Dump use them. They are
// spelled out here because syscall.AF_INET6 differs between operating
// systems and the decoders must be OS-neutral.
const (
	afInet  = 2  // AF_INET
	afInet6 = 10 // AF_INET6
)

// A Socket is one TCP socket as the kernel reports it through sock_diag(7)
// or /proc/net/tcp{,6}.
//
// For a LISTEN socket RecvQ is the current accept-queue length and SendQ the
// listen backlog (sock_diag only; /proc/net/tcp prints 0 as tx_queue of a
// listener): a full queue is RecvQ >= SendQ. TIME-WAIT and SYN-RECV request
// sockets have no owner: UID and Inode are 0.
type Socket struct {
	Local, Remote netip.AddrPort // a dual-stack socket talking IPv4 has ::ffff:a.b.c.d addresses
	State         State
	RecvQ, SendQ  uint32 // bytes queued; for LISTEN: accept queue length and backlog
	UID           uint32
	Inode         uint64 // socket inode, as in /proc/PID/fd/N -> socket:[Inode]; 0 if none
	Cookie        uint64 // sock_diag only: the kernel's socket cookie (SO_COOKIE)
	IfIndex       uint32 // sock_diag only: bound interface (SO_BINDTODEVICE), 0 if none
	CgroupID      uint64 // sock_diag only: cgroup v2 id of the creating process, 0 if not reported
	V6Only        bool   // sock_diag only: IPV6_V6ONLY is set on an AF_INET6 socket
}

// AcceptQueue returns a listener's accept-queue length and backlog. ok is
// false for sockets that are not listening.
func (s Socket) AcceptQueue() (queued, backlog uint32, ok bool) {
	if s.State != Listen {
		return 0, 0, false
	}
	return s.RecvQ, s.SendQ, true
}

// State is a kernel TCP state (include/net/tcp_states.h). The zero value is
// not a valid state.
//
//enumcheck:exhaustive
type State uint8

// TCP states, numbered as the kernel numbers them.
const (
	_             State = iota
	Established         // TCP_ESTABLISHED
	SynSent             // TCP_SYN_SENT
	SynRecv             // TCP_SYN_RECV
	FinWait1            // TCP_FIN_WAIT1
	FinWait2            // TCP_FIN_WAIT2
	TimeWait            // TCP_TIME_WAIT
	Close               // TCP_CLOSE
	CloseWait           // TCP_CLOSE_WAIT
	LastAck             // TCP_LAST_ACK
	Listen              // TCP_LISTEN
	Closing             // TCP_CLOSING
	NewSynRecv          // TCP_NEW_SYN_RECV: a request socket (half-open connection to a listener)
	BoundInactive       // TCP_BOUND_INACTIVE: bound, not listening or connecting (Linux 6.5+, dumps only when asked)
	maxState
)

var stateNames = [...]string{
	Established:   "ESTAB",
	SynSent:       "SYN-SENT",
	SynRecv:       "SYN-RECV",
	FinWait1:      "FIN-WAIT-1",
	FinWait2:      "FIN-WAIT-2",
	TimeWait:      "TIME-WAIT",
	Close:         "CLOSE", // ss prints UNCONN
	CloseWait:     "CLOSE-WAIT",
	LastAck:       "LAST-ACK",
	Listen:        "LISTEN",
	Closing:       "CLOSING",
	NewSynRecv:    "SYN-RECV", // ss folds request sockets into SYN-RECV
	BoundInactive: "BOUND-INACTIVE",
}

// String returns the state's name as ss(8) prints it, e.g. "ESTAB".
func (s State) String() string {
	if s > 0 && s < maxState {
		return stateNames[s]
	}
	return "UNKNOWN(" + strconv.Itoa(int(s)) + ")"
}

// Mask returns the StateMask with only s set.
func (s State) Mask() StateMask { return 1 << s }

// StateMask is a set of States, bit 1<<State, the layout of idiag_states in
// inet_diag_req_v2 (sock_diag(7)).
type StateMask uint32

// AllStates selects every TCP state, including TCP_BOUND_INACTIVE and the
// request sockets of half-open connections.
const AllStates StateMask = 1<<maxState - 2

// Mask returns the set of the given states.
func Mask(states ...State) StateMask {
	var m StateMask
	for _, s := range states {
		m |= s.Mask()
	}
	return m
}

// Has reports whether s is in m.
func (m StateMask) Has(s State) bool { return s < 32 && m&(1<<s) != 0 }
