package render

import (
	"net/netip"
	"strconv"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// appendVerdictJSON appends the attribution fields of issue 2/6 (cause,
// sender, target) to a JSON object being built, starting with a comma.
func appendVerdictJSON(b []byte, v *explain.Verdict) []byte {
	b = append(b, `,"cause":"`...)
	b = append(b, v.Cause.String()...)
	if v.Sampled {
		// Attribution was over its budget: the cause comes from the
		// packet alone, and null below means "not looked up".
		b = append(b, `","sampled":true`...)
		b = append(b, `,"sender":{"local":`...)
	} else {
		b = append(b, `","sender":{"local":`...)
	}
	b = appendTri(b, v.Sender.Local)
	b = append(b, `,"listening":`...)
	b = appendTri(b, v.Sender.Listening)
	b = append(b, `,"process":`...)
	b = appendProcJSON(b, &v.Sender.Process)
	b = append(b, `,"last_listener":`...)
	if l := &v.Sender.LastListener; l.Known {
		b = append(b, `{"pid":`...)
		b = appendPID(b, l.PID)
		b = append(b, `,"comm":`...)
		b = safe.AppendJSON(b, l.Comm)
		b = append(b, `,"uid":`...)
		b = strconv.AppendUint(b, uint64(l.UID), 10)
		b = append(b, `,"until":"`...)
		b = appendJSONTime(b, l.Until)
		b = append(b, `"}`...)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"listener":`...)
	b = appendProcJSON(b, &v.Listener)
	if v.Listener.Known {
		// Accept queue fill and backlog of the listener (fact 17).
		b = b[:len(b)-1]
		b = append(b, `,"queue":`...)
		b = strconv.AppendUint(b, uint64(v.Queue), 10)
		b = append(b, `,"backlog":`...)
		b = strconv.AppendUint(b, uint64(v.Backlog), 10)
		b = append(b, '}')
	}
	b = append(b, `},"target":{"local":`...)
	b = appendTri(b, v.Target.Local)
	b = append(b, `,"process":`...)
	b = appendProcJSON(b, &v.Target.Process)
	return append(b, '}')
}

func appendTri(b []byte, t explain.Tri) []byte {
	switch t {
	case explain.True:
		return append(b, "true"...)
	case explain.False:
		return append(b, "false"...)
	}
	return append(b, "null"...)
}

func appendPID(b []byte, pid int) []byte {
	if pid <= 0 {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, int64(pid), 10)
}

// appendProcJSON writes PROC = {"pid","comm","uid","inode","state","cgroup",
// "seen"} or null; pid, comm and cgroup are null when the socket is known
// but its owner is not.
func appendProcJSON(b []byte, p *explain.Proc) []byte {
	if !p.Known {
		return append(b, "null"...)
	}
	b = append(b, `{"pid":`...)
	if p.Owned {
		b = appendPID(b, p.PID)
		b = append(b, `,"comm":`...)
		b = safe.AppendJSON(b, p.Comm)
	} else {
		b = append(b, `null,"comm":null`...)
	}
	b = append(b, `,"uid":`...)
	b = strconv.AppendUint(b, uint64(p.UID), 10)
	b = append(b, `,"inode":`...)
	b = strconv.AppendUint(b, p.Inode, 10)
	b = append(b, `,"state":`...)
	b = safe.AppendJSON(b, p.State)
	b = append(b, `,"cgroup":`...)
	if p.Owned && p.Cgroup != "" {
		b = safe.AppendJSON(b, p.Cgroup)
	} else {
		b = append(b, "null"...)
	}
	// The container id the cgroup path names (docker, containerd, cri-o,
	// podman), so a reset inside a container says which one.
	b = append(b, `,"container":`...)
	if id := containerOf(p); id != "" {
		b = safe.AppendJSON(b, id)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"seen":"`...)
	b = append(b, p.Seen.String()...)
	return append(b, `"}`...)
}

// appendVerdictText appends the plain-words tail of a reset line, e.g.
// "; refused: nothing listens on 127.0.0.1:7211 (collector pid 311 listened
// until 10:54:50)".
func appendVerdictText(b []byte, e *sniff.Event, v *explain.Verdict) []byte {
	b = append(b, "; "...)
	b = append(b, v.Cause.String()...)
	switch {
	case v.Offline:
		b = append(b, " (offline)"...)
	case v.Sampled:
		b = append(b, " (from the packet: attribution over budget)"...)
	}
	local, remote := v.Sender.Local == explain.True, v.Sender.Local == explain.False
	switch v.Cause {
	case explain.Refused:
		if local {
			b = append(b, ": nothing listens on "...)
			b = appendEndpointService(b, e.Src)
			if l := &v.Sender.LastListener; l.Known {
				b = append(b, " ("...)
				b = appendOwner(b, l.Comm, l.PID)
				b = append(b, " listened until "...)
				b = l.Until.AppendFormat(b, "15:04:05")
				b = append(b, ')')
			}
		} else {
			b = append(b, " by "...)
			b = appendEndpointService(b, e.Src)
			if remote {
				b = append(b, ": nothing listens there"...)
			}
		}
		b = appendClient(b, v)
	case explain.Rejected:
		b = append(b, ": "...)
		b = appendEndpointService(b, e.Src)
		b = append(b, " has a listener"...)
		if v.Listener.Owned {
			b = append(b, " ("...)
			b = appendOwner(b, v.Listener.Comm, v.Listener.PID)
			b = append(b, ')')
		}
		b = append(b, " but the SYN was reset: a firewall reject rule or a policy"...)
		b = appendClient(b, v)
	case explain.Overflow:
		b = append(b, ": accept queue of "...)
		b = appendEndpointService(b, e.Src)
		b = append(b, " is full ("...)
		b = strconv.AppendUint(b, uint64(v.Queue), 10)
		b = append(b, '/')
		b = strconv.AppendUint(b, uint64(v.Backlog), 10)
		b = append(b, ')')
		if v.Listener.Owned {
			b = append(b, "; "...)
			b = appendOwner(b, v.Listener.Comm, v.Listener.PID)
			b = append(b, " accepts too slowly"...)
		}
	case explain.Abort:
		b = append(b, " by "...)
		switch {
		case v.Sender.Process.Owned:
			b = appendProcOwner(b, &v.Sender.Process)
		case v.Listener.Owned:
			b = append(b, "listener "...)
			b = appendOwner(b, v.Listener.Comm, v.Listener.PID)
			b = append(b, " closing with connections not yet accepted"...)
		default:
			if remote {
				b = append(b, "remote "...)
			}
			b = e.Src.AppendTo(b)
		}
	case explain.Stale:
		b = append(b, ": "...)
		if remote {
			b = append(b, "remote "...)
		}
		b = e.Src.AppendTo(b)
		b = append(b, " has no connection for this segment"...)
	case explain.Closed:
		b = append(b, ": "...)
		b = e.Src.AppendTo(b)
		b = append(b, " had closed this connection (sent its FIN) and data came after"...)
		if v.Sender.Process.Owned {
			b = append(b, " ("...)
			b = appendOwner(b, v.Sender.Process.Comm, v.Sender.Process.PID)
			b = append(b, ')')
		}
	}
	return b
}

// appendClient names the local client whose connection was refused.
func appendClient(b []byte, v *explain.Verdict) []byte {
	if p := &v.Target.Process; p.Owned {
		b = append(b, "; client "...)
		b = appendProcOwner(b, p)
	}
	return b
}

// appendProcOwner writes p's owner as appendOwner does, and says so when
// the name was inferred from the listener on the port, not found for the
// socket itself.
func appendProcOwner(b []byte, p *explain.Proc) []byte {
	b = appendOwner(b, p.Comm, p.PID)
	if p.Seen == explain.ViaListener {
		b = append(b, " (inferred: it owns the listener)"...)
	}
	return b
}

// appendOwner writes "comm pid N", escaped for a terminal.
func appendOwner(b []byte, comm string, pid int) []byte {
	if comm != "" {
		b = safe.AppendText(b, comm)
		b = append(b, ' ')
	}
	if pid > 0 {
		b = append(b, "pid "...)
		b = strconv.AppendInt(b, int64(pid), 10)
	}
	return b
}

// appendEndpointService writes addr:port and, for a well-known port, the
// service that usually listens there, from the built-in table, said as the
// guess it is ("127.0.0.1:80 (usually http)"): nothing checked what
// listens there.
func appendEndpointService(b []byte, ap netip.AddrPort) []byte {
	b = ap.AppendTo(b)
	if name := sniff.PortName(ap.Port()); name != "" {
		b = append(b, " (usually "...)
		b = append(b, name...)
		b = append(b, ')')
	}
	return b
}

// containerOf returns the container id of a socket's owner, or "".
func containerOf(p *explain.Proc) string {
	if !p.Owned || p.Cgroup == "" {
		return ""
	}
	return proc.ContainerID(p.Cgroup)
}
