// Package proc reads the kernel's view of TCP sockets and ties them to the
// processes that own them, so that a captured reset can be explained.
//
// Sockets come from NETLINK_SOCK_DIAG (sock_diag(7)) first and from
// /proc/net/tcp and /proc/net/tcp6 (proc(5)) as a fallback, in the order
// iproute2's ss uses. Owners are found the way `ss -p` finds them: by reading
// the /proc/PID/fd/N symlinks ("socket:[INODE]"). Counters come from
// /proc/net/snmp and /proc/net/netstat. Table combines these into a bounded,
// frequently refreshed cache that still answers for connections and listeners
// that have just gone away.
//
// Privileges: a sock_diag dump or exact lookup of TCP sockets needs none, and
// neither do the /proc/net files. Reading another user's /proc/PID/fd needs
// CAP_SYS_PTRACE or CAP_DAC_READ_SEARCH; without them those processes are
// skipped, and their sockets simply have no owner.
//
// The /proc parsers and the netlink message decoder are OS-neutral and work
// on any GOOS (useful for fixtures and fuzzing); the sock_diag client is
// Linux-only and returns an error elsewhere. Each sock_diag socket belongs to
// the network namespace of the thread that created it: wrap DialDiag in
// netns.Do to read another namespace.
package proc
