package main

import (
	"bufio"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/render"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/namespaces"
	"github.com/rstwatch/rstwatch/proc/netns"
)

// Linux address family numbers, as proc's Source takes them (they differ
// from syscall.AF_INET6 on other systems).
const (
	linuxAFInet  = 2
	linuxAFInet6 = 10
)

func socketsCommand() *cli.Command {
	return &cli.Command{
		Name:      "sockets",
		Usage:     "list TCP sockets with their owning processes, like `ss -tanpe`",
		UsageText: "rstwatch sockets [-l] [--port N]... [--json]",
		Description: `Lists the TCP sockets of this network namespace, IPv4 and IPv6, in every state
(listeners, connections, half-open, TIME-WAIT), one per line:

   State   Recv-Q  Send-Q  Local Address:Port  Peer Address:Port  UID  Inode  Process
   LISTEN       0    4096  0.0.0.0:22          0.0.0.0:*            0  21510  612/sshd

For a listener Recv-Q is its accept queue and Send-Q its backlog: a full queue
is Recv-Q >= Send-Q. Process is PID/COMM, found as ss -p finds it (by the
socket's inode in /proc/PID/fd); "-" if no process holds the socket (TIME-WAIT,
not yet accepted) or its /proc/PID/fd is not readable (another user's process:
run as root to see them all). Sockets come from sock_diag(7), or from
/proc/net/tcp and tcp6 if sock_diag is not available.

With --json each socket is one object per line: state, local, local_port,
peer, peer_port, recv_q, send_q, uid, inode, pid, comm, cgroup, container (pid
and comm null when no process is known to hold the socket; cgroup and container
null when unknown or not in a container).

Examples:
   rstwatch sockets                      every TCP socket
   rstwatch sockets -l                   listeners, with accept queues and owners
   rstwatch sockets --port 443           sockets to or from port 443
   rstwatch sockets --json | jq -r 'select(.container) | .container' | sort -u`,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: flagListening, Aliases: []string{"l"}, Usage: "only listening sockets"},
			portsFlag("only sockets whose local or peer port is `N`, a number or a service name (repeatable)"),
			numericFlag(),
			&cli.BoolFlag{Name: flagJSON, Usage: "print one JSON object per socket per line"},
		}, namespaceFlags()...),
		Action: runSockets,
	}
}

func runSockets(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usagef("unexpected argument %q (filters are flags: -l, --port)", c.Args().First())
	}
	var ports []uint16
	for _, p := range portsOf(c) {
		if p < 1 || p > 65535 {
			return usagef("invalid --%s %d: want 1-65535", flagPort, p)
		}
		ports = append(ports, uint16(p))
	}
	// ss -a shows every state but TCP_BOUND_INACTIVE, which it lists only
	// when asked by name.
	states := proc.AllStates &^ proc.BoundInactive.Mask()
	if c.Bool(flagListening) {
		states = proc.Listen.Mask()
	}
	fs, err := proc.NewFS("")
	if err != nil {
		return err
	}
	target, err := resolveNamespace(c, fs)
	if err != nil {
		return err
	}
	socks, err := dumpSockets(fs, states, target)
	if err != nil {
		return err
	}
	owners := proc.NewOwners(fs, nil)
	if err := owners.Refresh(); err != nil {
		return err
	}
	lines := make([]render.SocketLine, 0, len(socks))
	for _, s := range socks {
		if !portMatches(s, ports) {
			continue
		}
		l := render.SocketLine{Socket: s}
		if s.Inode != 0 {
			l.Owner, l.Owned = owners.Lookup(s.Inode)
		}
		lines = append(lines, l)
	}

	out := bufio.NewWriterSize(c.App.Writer, 64<<10)
	var b []byte
	if c.Bool(flagJSON) {
		for i := range lines {
			b = render.AppendSocketJSON(b[:0], &lines[i])
			b = append(b, '\n')
			out.Write(b)
		}
	} else {
		out.Write(render.AppendSocketTable(nil, lines))
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// dumpSockets lists the IPv4 and IPv6 TCP sockets in states through
// sock_diag, or /proc/net/tcp{,6} if sock_diag cannot be opened. A dump the
// kernel kept interrupting is used as it is.
func dumpSockets(fs proc.FS, states proc.StateMask, target *namespaces.Target) ([]proc.Socket, error) {
	var src proc.Source
	if target == nil {
		src = proc.OpenSource(fs)
	} else {
		// The netlink socket belongs to the namespace it is created in.
		err := netns.Do(target.Path, func() (err error) {
			src, err = proc.DialDiag()
			return err
		})
		if err != nil {
			if target.PID == 0 {
				return nil, fmt.Errorf("list sockets in %s: %w", safe.Text(target.Name), err)
			}
			src = fs.NetOf(target.PID) // ss's /proc fallback, read through a process in it
		}
	}
	if d, ok := src.(*proc.Diag); ok {
		defer d.Close()
	}
	var socks []proc.Socket
	for _, family := range []uint8{linuxAFInet, linuxAFInet6} {
		var err error
		socks, err = src.AppendDump(socks, family, states)
		if err != nil && !errors.Is(err, proc.ErrDumpInterrupted) {
			return nil, fmt.Errorf("list sockets: %w", err)
		}
	}
	return socks, nil
}

// portMatches reports whether s's local or peer port is one of ports (any
// port if ports is empty).
func portMatches(s proc.Socket, ports []uint16) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if s.Local.Port() == p || s.Remote.Port() == p {
			return true
		}
	}
	return false
}
