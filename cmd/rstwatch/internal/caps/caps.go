package caps

import (
	"fmt"
	"strings"

	"github.com/rstwatch/rstwatch/proc"
)

// Capability is a Linux capability, by its bit number (capabilities(7)).
// Only the ones rstwatch deals with are named.
type Capability uint8

// What each capability is for in rstwatch (measured on Linux 6.18):
//
//   - CAP_NET_RAW opens the AF_PACKET socket. Once it is open, reading
//     needs nothing.
//   - CAP_NET_ADMIN only lets SO_RCVBUFFORCE raise the socket buffer past
//     net.core.rmem_max, once, at open.
//   - CAP_SYS_ADMIN enters another network namespace (setns(2)) to open
//     sockets there: --netns, --pid, --all-netns.
//   - CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH name the process that owns a
//     socket, by reading /proc/PID/fd of other processes, on every refresh.
//     Opening the directory (mode 0500, owned by the process's uid) needs
//     CAP_DAC_READ_SEARCH unless rstwatch runs as that uid; readlink(2) of
//     each entry passes the ptrace access check, which needs CAP_SYS_PTRACE
//     for another uid's process, and also for a same-uid process holding
//     capabilities rstwatch lacks (root daemons, when rstwatch runs as
//     root with fewer capabilities). So both, as root or not; either alone
//     names only some processes.
const (
	DACReadSearch Capability = 2  // CAP_DAC_READ_SEARCH
	NetAdmin      Capability = 12 // CAP_NET_ADMIN
	NetRaw        Capability = 13 // CAP_NET_RAW
	SysPtrace     Capability = 19 // CAP_SYS_PTRACE
	SysAdmin      Capability = 21 // CAP_SYS_ADMIN
)

var capNames = map[Capability]string{
	DACReadSearch: "CAP_DAC_READ_SEARCH",
	NetAdmin:      "CAP_NET_ADMIN",
	NetRaw:        "CAP_NET_RAW",
	SysPtrace:     "CAP_SYS_PTRACE",
	SysAdmin:      "CAP_SYS_ADMIN",
}

func (c Capability) String() string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return fmt.Sprintf("cap_%d", uint8(c))
}

// Set is a set of capabilities, bit c for Capability c, as the kernel
// keeps them (and as /proc/PID/status prints CapEff in hex).
type Set uint64

func Of(cs ...Capability) Set {
	var s Set
	for _, c := range cs {
		s |= 1 << c
	}
	return s
}

func (s Set) Has(c Capability) bool { return s&(1<<c) != 0 }

// String lists the named capabilities in s, in bit order, then the count
// of others ("CAP_NET_RAW,CAP_SYS_PTRACE+3").
func (s Set) String() string {
	var names []string
	others := 0
	for c := range Capability(64) {
		if !s.Has(c) {
			continue
		}
		if n, ok := capNames[c]; ok {
			names = append(names, n)
		} else {
			others++
		}
	}
	out := strings.Join(names, ",")
	if others > 0 {
		out += fmt.Sprintf("+%d", others)
	}
	if out == "" {
		return "none"
	}
	return out
}

// Runtime are the capabilities a capture still needs once its
// sockets are open, so the ones to keep when dropping the rest: those that
// name the processes owning sockets (read /proc/PID/fd on every refresh),
// and, when the command opens sockets in network namespaces later
// (--all-netns picking up new namespaces), CAP_SYS_ADMIN and CAP_NET_RAW
// for that. CAP_NET_ADMIN is never kept: it only matters at open.
func Runtime(opensSocketsLater bool) []Capability {
	keep := append([]Capability(nil), ownerCaps...)
	if opensSocketsLater {
		keep = append(keep, SysAdmin, NetRaw)
	}
	return keep
}

// ownerCaps are the capabilities that reading other processes'
// /proc/PID/fd needs (see the constants above).
var ownerCaps = []Capability{SysPtrace, DACReadSearch}

// OwnersNote returns the one-line note to print (once, on stderr) when the
// owner index could not read some processes' sockets, or "" when it read
// them all. st is proc.Owners.Stats() after a refresh; have is the
// process's effective set (Effective). The note names what is
// missing, e.g.
//
//	process names unavailable for 12 processes: need CAP_SYS_PTRACE
//
// With both capabilities there is no note, even if some processes stayed
// unreadable (one in another user namespace): there is nothing to grant.
func OwnersNote(st proc.OwnersStats, have Set) string {
	if st.Unreadable <= 0 {
		return ""
	}
	procs := "processes"
	if st.Unreadable == 1 {
		procs = "process"
	}
	var missing []Capability
	for _, c := range ownerCaps {
		if !have.Has(c) {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		// Nothing to grant: a process in another user namespace, or a
		// hardened kernel. Not worth a note.
		return ""
	}
	return fmt.Sprintf("process names unavailable for %d %s: need %s", st.Unreadable, procs, joinCaps(missing, " and "))
}

func joinCaps(cs []Capability, sep string) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.String()
	}
	return strings.Join(s, sep)
}
