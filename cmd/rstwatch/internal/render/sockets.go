package render

import (
	"net/netip"
	"strconv"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/proc"
)

// SocketLine is one socket of `rstwatch sockets` with its owner, if known.
type SocketLine struct {
	proc.Socket
	Owner proc.Process
	Owned bool // Owner is known
}

// appendAddrPort appends ap as ss prints it: 127.0.0.1:80, [::1]:80, and *
// for port 0 (a listener's peer).
func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	a := ap.Addr()
	if a.Is6() {
		b = append(b, '[')
		b = a.AppendTo(b)
		b = append(b, ']')
	} else {
		b = a.AppendTo(b)
	}
	b = append(b, ':')
	if ap.Port() == 0 {
		return append(b, '*')
	}
	return strconv.AppendUint(b, uint64(ap.Port()), 10)
}

// AppendSocketTable appends lines as an aligned table with a header like
// ss's. The last column (Process) is not padded.
func AppendSocketTable(b []byte, lines []SocketLine) []byte {
	header := [...]string{"State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "UID", "Inode", "Process"}
	right := [...]bool{false, true, true, false, false, true, true, false}
	rows := make([][len(header)]string, len(lines))
	var w [len(header)]int
	for i, h := range header {
		w[i] = len(h)
	}
	for i := range lines {
		l := &lines[i]
		r := &rows[i]
		r[0] = l.State.String()
		r[1] = strconv.FormatUint(uint64(l.RecvQ), 10)
		r[2] = strconv.FormatUint(uint64(l.SendQ), 10)
		r[3] = string(appendAddrPort(nil, l.Local))
		r[4] = string(appendAddrPort(nil, l.Remote))
		r[5] = strconv.FormatUint(uint64(l.UID), 10)
		r[6] = strconv.FormatUint(l.Inode, 10)
		r[7] = "-"
		if l.Owned {
			p := strconv.AppendInt(nil, int64(l.Owner.PID), 10)
			p = append(p, '/')
			r[7] = string(safe.AppendText(p, l.Owner.Comm))
		}
		for j := range r {
			w[j] = max(w[j], len(r[j]))
		}
	}
	appendRow := func(b []byte, cells *[len(header)]string) []byte {
		for j, s := range cells {
			if j == len(cells)-1 {
				b = appendCell(b, s, 0, false)
				continue
			}
			b = appendCell(b, s, w[j], right[j])
		}
		return append(b, '\n')
	}
	b = appendRow(b, &header)
	for i := range rows {
		b = appendRow(b, &rows[i])
	}
	return b
}

// AppendSocketJSON appends l as one JSON object without the newline:
//
//	{"state":"ESTAB","local":"127.0.0.1","local_port":7300,"peer":"127.0.0.1","peer_port":41000,"recv_q":0,"send_q":0,"uid":0,"inode":81234,"pid":4242,"comm":"curl","cgroup":"/user.slice","container":null}
func AppendSocketJSON(b []byte, l *SocketLine) []byte {
	b = append(b, `{"state":"`...)
	b = append(b, l.State.String()...)
	b = append(b, `","local":"`...)
	b = l.Local.Addr().AppendTo(b)
	b = append(b, `","local_port":`...)
	b = strconv.AppendUint(b, uint64(l.Local.Port()), 10)
	b = append(b, `,"peer":"`...)
	b = l.Remote.Addr().AppendTo(b)
	b = append(b, `","peer_port":`...)
	b = strconv.AppendUint(b, uint64(l.Remote.Port()), 10)
	b = append(b, `,"recv_q":`...)
	b = strconv.AppendUint(b, uint64(l.RecvQ), 10)
	b = append(b, `,"send_q":`...)
	b = strconv.AppendUint(b, uint64(l.SendQ), 10)
	b = append(b, `,"uid":`...)
	b = strconv.AppendUint(b, uint64(l.UID), 10)
	b = append(b, `,"inode":`...)
	b = strconv.AppendUint(b, l.Inode, 10)
	if !l.Owned {
		return append(b, `,"pid":null,"comm":null,"cgroup":null,"container":null}`...)
	}
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(l.Owner.PID), 10)
	b = append(b, `,"comm":`...)
	b = safe.AppendJSON(b, l.Owner.Comm)
	b = append(b, `,"cgroup":`...)
	if l.Owner.Cgroup == "" {
		b = append(b, "null"...)
	} else {
		b = safe.AppendJSON(b, l.Owner.Cgroup)
	}
	b = append(b, `,"container":`...)
	if id := proc.ContainerID(l.Owner.Cgroup); id != "" {
		b = safe.AppendJSON(b, id)
	} else {
		b = append(b, "null"...)
	}
	return append(b, '}')
}
