package diagnose

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/render"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// programText is "curl ×5 (pids 812, 815, 818, …)" or "nginx (pid 90)".
func programText(p ProgramRef) string {
	name := safe.Text(string(p.Comm))
	if len(p.PIDs) == 1 {
		return fmt.Sprintf("%s (pid %d)", name, p.PIDs[0])
	}
	var ps []string
	for i, pid := range p.PIDs {
		if i == 3 {
			ps = append(ps, "…")
			break
		}
		ps = append(ps, strconv.Itoa(pid))
	}
	return fmt.Sprintf("%s ×%d (pids %s)", name, p.Processes, strings.Join(ps, ", "))
}

// programsIn lists the programs of a finding in one role ("" if none).
func programsIn(f *Finding, role string) string {
	var out []string
	for _, p := range f.Programs {
		if p.Role == role {
			out = append(out, programText(p))
		}
	}
	return strings.Join(out, ", ")
}

// quote is "net.core.somaxconn is 4096" when the setting was read.
func (d *Diagnosis) quote(name string) (string, bool) {
	v, ok := d.Sysctls[name]
	if !ok {
		return "", false
	}
	return name + " is " + safe.Text(v), true
}

// advice is the finding's plain-words sentences with the next step. Each
// claim rests on a field of f (or of the report's sysctls).
func (d *Diagnosis) advice(f *Finding) string {
	svc := f.ServiceAddr
	clients := programsIn(f, "client") // the peers line lists their addresses
	withClients := func(s string) string {
		if clients != "" {
			return s + "; clients: " + clients
		}
		return s
	}
	local := f.SenderLoc != nil && *f.SenderLoc
	if s, ok := failureAdvice(f, clients); ok {
		return s
	}
	switch f.Cause {
	case explain.Refused.String():
		switch {
		case f.SenderLoc == nil:
			return withClients(fmt.Sprintf("%s answered SYNs with resets: nothing listens there, or a firewall rejects; a capture file cannot tell", svc)) +
				": check that service, or the clients' configuration"
		case !local:
			return withClients(fmt.Sprintf("%s: the peer answered the SYN with a reset: nothing listens there, or a firewall rejects; this host cannot tell", svc)) +
				": check that service, or the clients' configuration"
		case f.ListenChecked == f.Count:
			s := fmt.Sprintf("nothing listens on %s (the kernel's listening sockets were checked at each reset)", svc)
			s = withClients(s)
			if f.Listener != nil && !f.Listener.Listening && f.Listener.PID > 0 && f.Listener.Until != nil {
				s += fmt.Sprintf("; %s (pid %d) listened there until %s", safe.Text(string(f.Listener.Comm)), f.Listener.PID, f.Listener.Until.Format("15:04:05"))
				return s + ": start it or fix the client"
			}
			return s + ": start the service or fix the client"
		}
		return withClients(fmt.Sprintf("%s answered SYNs with resets and no listener was seen there, but the kernel was asked at only %d of %d resets: nothing listens there, or a firewall rejects",
			svc, f.ListenChecked, f.Count)) + ": check that service and the firewall rules"
	case explain.Rejected.String():
		who := ""
		if f.Listener != nil && f.Listener.PID > 0 {
			who = fmt.Sprintf(" although %s (pid %d) listens there", safe.Text(string(f.Listener.Comm)), f.Listener.PID)
		} else if f.Listener != nil {
			who = " although a socket listens there"
		}
		return withClients(fmt.Sprintf("a firewall or policy resets connections to %s%s", svc, who)) +
			": check the firewall rules (nft list ruleset, iptables -S)"
	case explain.Overflow.String():
		return d.overflowAdvice(f)
	case explain.Abort.String():
		return d.abortAdvice(f, local, clients)
	case explain.Closed.String():
		return withClients(fmt.Sprintf("%s had closed %s and then got data: the server closed first (an idle timeout, a client limit such as redis maxclients, an error then close) while the client still sent",
			addrOf(f.Local), render.Plural(f.Count, "connection"))) +
			": make the client expect the close (retry on a fresh connection; an idle timeout in its pool shorter than the server's), or find why the server closes"
	case explain.Stale.String():
		return fmt.Sprintf("%s reached %s for connections it no longer has: a peer kept using a connection after a restart, a NAT or conntrack timeout, or resets that were lost", render.Plural(f.Count, "segment"), f.Local)
	}
	return fmt.Sprintf("%s of an unusual shape from %s: look at them with `rstwatch watch --port %s`", render.Plural(f.Count, "reset"), f.Local, portOf(f.Local))
}

func (d *Diagnosis) abortAdvice(f *Finding, local bool, clients string) string {
	n := render.Plural(f.Count, "connection")
	if f.Expected {
		who := programsIn(f, "client")
		if who == "" {
			who = "clients (most often " + addrOf(f.Local) + ")"
			if local {
				who = "a client on this host"
			}
		}
		trailing := ""
		if f.Trailing > 0 {
			trailing = fmt.Sprintf(", after which the closed ports answered the server's segments still in flight with %s",
				render.Plural(f.Trailing, "stateless reset"))
		}
		return fmt.Sprintf("%s reset %s to %s after a completed exchange (it had sent data and received the reply)%s: a health checker or a client that closes with SO_LINGER 0; expected, not a failure",
			who, n, f.ServiceAddr, trailing)
	}
	how := "(SO_LINGER 0, closed with unread data, or a listener closed with connections pending)"
	switch {
	case !local && f.SenderRole == roleServer:
		return withList(fmt.Sprintf("the server %s aborted %s", f.ServiceAddr, n), "clients on this host", clients) + ": check that service"
	case !local && f.SenderRole == roleClient:
		return fmt.Sprintf("clients (most often %s) aborted %s to %s: check them", addrOf(f.Local), n, f.ServiceAddr)
	case !local:
		return fmt.Sprintf("the peer %s aborted %s (roles unknown)", f.Local, n)
	case f.SenderRole == roleServer:
		who := programsIn(f, "server")
		if who == "" {
			who = "the server"
		}
		return withList(fmt.Sprintf("%s on %s aborted %s of its clients %s", who, f.ServiceAddr, n, how), "clients", clients) + ": check that application"
	case f.SenderRole == roleClient:
		who := programsIn(f, "client")
		if who == "" {
			who = "a client on this host"
		}
		return fmt.Sprintf("%s aborted %s to %s (SO_LINGER 0 or closed with unread data) before the exchange was seen complete: check that application", who, n, f.ServiceAddr)
	}
	who := programsIn(f, "sender")
	if who == "" {
		who = f.Local
	} else {
		who += " on " + f.Local
	}
	return fmt.Sprintf("%s aborted %s %s; roles unknown: check that application", who, n, how)
}

func withList(s, label, list string) string {
	if list == "" {
		return s
	}
	return s + "; " + label + ": " + list
}

// addrOf is the address of an "addr:port" endpoint.
func addrOf(ep string) string {
	if a, err := netip.ParseAddrPort(ep); err == nil {
		return a.Addr().String()
	}
	return ep
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

// overflowAdvice explains a listener whose accept queue overflowed.
func (d *Diagnosis) overflowAdvice(f *Finding) string {
	s := "listener " + f.ServiceAddr
	if f.Listener != nil && f.Listener.PID > 0 {
		s += fmt.Sprintf(" (%s pid %d)", safe.Text(string(f.Listener.Comm)), f.Listener.PID)
	}
	if f.Listener != nil && f.Listener.Backlog > 0 {
		s += fmt.Sprintf(" had a full accept queue %d/%d", f.Listener.Queue, f.Listener.Backlog)
	} else {
		s += " had a full accept queue"
	}
	if f.Listener != nil && f.Listener.SYNsWhileFull > 0 {
		s += fmt.Sprintf(" while %s arrived for it", render.Plural(f.Listener.SYNsWhileFull, "SYN"))
	}
	s += ": it accepts too slowly; raise its backlog or make it accept faster"
	var set []string
	for _, name := range []string{SysSomaxconn, SysMaxSynBacklog, SysAbortOnOverflow} {
		if q, ok := d.quote(name); ok {
			set = append(set, q)
		}
	}
	if len(set) > 0 {
		s += " (here " + strings.Join(set, ", ") + "; the backlog is capped by net.core.somaxconn)"
	}
	return s
}

// overflowFindings blames the listeners that overflowed: those seen full
// while SYNs arrived for them, merging into an overflow finding from
// resets when there is one. A listener full but idle (no SYN) is not
// blamed, and the namespace's ListenOverflows is never split among them:
// the unexplained section quotes it once.
func (d *Diagnosis) overflowFindings(fs []Finding, secs float64) []Finding {
	var blamed []*listenerSample
	for _, l := range d.listeners {
		if l.synsWhileFull > 0 {
			blamed = append(blamed, l)
		}
	}
	sort.Slice(blamed, func(i, j int) bool { return blamed[i].Addr.String() < blamed[j].Addr.String() })
	for _, l := range blamed {
		merged := false
		for i := range fs {
			if fs[i].Cause == explain.Overflow.String() && fs[i].ServiceAddr == l.Addr.String() && fs[i].Listener != nil {
				fs[i].Listener.SYNsWhileFull = l.synsWhileFull
				fs[i].Advice = safe.String(d.advice(&fs[i]))
				merged = true
			}
		}
		if merged {
			continue
		}
		ref := &ListenerRef{Listening: true, Queue: l.maxQueue, Backlog: l.Backlog, SYNsWhileFull: l.synsWhileFull}
		procs := []*ProcessRef{}
		if l.Process.Owned {
			ref.PID, ref.Comm = l.Process.PID, safe.String(l.Process.Comm)
			procs = append(procs, &ProcessRef{Role: "listener", PID: l.Process.PID, Comm: safe.String(l.Process.Comm), UID: l.Process.UID})
		}
		t := true
		f := Finding{Kind: "listen_overflow", Cause: explain.Overflow.String(), Local: l.Addr.String(), Service: "", Count: l.synsWhileFull,
			RatePerS: round(float64(l.synsWhileFull)/secs, 2), RunRatePerS: round(float64(l.synsWhileFull)/secs, 2),
			Ifnames: []safe.String{}, Peers: []PeerCount{}, Processes: procs, Listener: ref, SenderLoc: &t,
			ServiceAddr: l.Addr.String(), ServiceFrom: fromListener, SenderRole: roleServer, RolesKnown: true}
		f.Service = sniff.PortName(l.Addr.Port())
		d.nameService(&f, l.Addr)
		f.Programs = programs(f.Processes)
		f.Advice = safe.String(d.advice(&f))
		fs = append(fs, f)
	}
	return fs
}
