package diagnose

import (
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// groupKey is what makes one finding: the kind of event (a reset's cause
// today; other kinds, such as SYN timeouts, can key findings the same way),
// the service it concerns (the server end of the connections), the role of
// the end that acted, and the sender's program when it is on this host. So
// resets from many client ports to one service are one finding, and a
// program's processes are one.
type groupKey struct {
	kind       string // "reset", "unanswered" or "unreachable" (kindOf)
	cause      string
	service    netip.AddrPort
	senderRole string // roleClient, roleServer or "" (roles unknown)
	program    string // the sender's comm, when local and known
	expected   bool   // resets that closed completed exchanges: a note
}

// group is one finding in the making.
type group struct {
	groupKey
	from          string // how the service end is known (fromHandshake, ...)
	count         int
	first, last   time.Time
	senderLocal   explain.Tri
	senders       map[netip.AddrPort]int
	directions    map[string]int
	ifnames       map[string]int
	peers         map[netip.Addr]int
	processes     map[string]*ProcessRef // by role and pid
	listener      *ListenerRef
	lastListener  explain.LastListener
	clientsOnHost int // resets received by a local client, answering its SYN
	checked       int // resets whose "is anyone listening" was asked of the kernel
	resent        int // unanswered: SYNs (or SYN-ACKs) seen sent again, all connections
	icmpFrom      map[netip.Addr]int
	icmpText      map[string]int
	localClients  int  // failures of connections a local client started
	synack        bool // unanswered: a SYN-ACK was sent again
	icmpV4DU      int  // unreachable: IPv4 destination-unreachable errors (counted by Icmp InDestUnreachs)
	trailing      int  // expected: stateless resets from the closed client ports that followed
}

func newGroup(k groupKey, from string, senderLocal explain.Tri, t time.Time) *group {
	return &group{groupKey: k, from: from, senderLocal: senderLocal, first: t,
		senders: map[netip.AddrPort]int{}, directions: map[string]int{}, ifnames: map[string]int{},
		peers: map[netip.Addr]int{}, processes: map[string]*ProcessRef{}}
}

// fromRank orders how well a service end is known.
var fromRank = map[string]int{fromHandshake: 3, fromSYN: 2, fromListener: 1, fromPort: 0}

func (g *group) add(e *sniff.Event, v *explain.Verdict, from string) {
	if fromRank[from] > fromRank[g.from] {
		g.from = from
	}
	g.count++
	g.last = e.Time
	g.senders[unmap(e.Src)]++
	g.directions[e.Direction.String()]++
	if e.Ifname != "" {
		g.ifnames[e.Ifname]++
	}
	g.peers[e.Dst.Addr().Unmap()]++
	if v.Sender.ListenChecked {
		g.checked++
	}
	sender, receiver := roleNames(g.senderRole)
	if v.Target.Local == explain.True && g.from != fromPort && (g.cause == "refused" || g.cause == "rejected") {
		g.clientsOnHost++
	}
	g.addProcess(sender, &v.Sender.Process)
	g.addProcess(receiver, &v.Target.Process)
	if v.Listener.Known {
		g.addProcess("listener", &v.Listener)
		g.listener = &ListenerRef{Listening: true, Queue: v.Queue, Backlog: v.Backlog}
		if v.Listener.Owned {
			g.listener.PID, g.listener.Comm = v.Listener.PID, safe.String(v.Listener.Comm)
		}
	}
	if l := v.Sender.LastListener; l.Known && (!g.lastListener.Known || l.Until.After(g.lastListener.Until)) {
		g.lastListener = l
	}
}

// roleNames gives the roles of a reset's two ends: by the connection when
// known, else "sender" and "receiver".
func roleNames(senderRole string) (sender, receiver string) {
	switch senderRole {
	case roleClient:
		return roleClient, roleServer
	case roleServer:
		return roleServer, roleClient
	}
	return "sender", "receiver"
}

func (g *group) addProcess(role string, p *explain.Proc) {
	if !p.Owned {
		return
	}
	key := role + "/" + strconv.Itoa(p.PID)
	if r, ok := g.processes[key]; ok {
		r.Count++
		return
	}
	g.processes[key] = &ProcessRef{Role: role, PID: p.PID, Comm: safe.String(p.Comm), UID: p.UID, Count: 1}
}

// programs groups a finding's processes by role and program.
func programs(ps []*ProcessRef) []ProgramRef {
	out := []ProgramRef{}
	idx := map[string]int{}
	for _, p := range ps {
		k := p.Role + "\x00" + string(p.Comm)
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, ProgramRef{Role: p.Role, Comm: p.Comm, PIDs: []int{}})
		}
		out[i].PIDs = append(out[i].PIDs, p.PID)
		out[i].Count += max(p.Count, 1)
	}
	for i := range out {
		slices.Sort(out[i].PIDs)
		out[i].Processes = len(out[i].PIDs)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Role < out[j].Role })
	return out
}

// mergePartial undoes partial attribution: resets whose sender's program
// was not found join the one group of the same cause, service and role
// whose program was, so that a program found for some of its resets is
// still one finding. With several such programs they stay apart: which one
// sent them is not known. It changes the groups for good, so calling it
// again (another Report) changes nothing more.
func (d *Diagnosis) mergePartial() {
	out := make([]*group, 0, len(d.order))
	for _, g := range d.order {
		var into *group
		n := 0
		for _, h := range d.order {
			if g.program == "" && h.program != "" && h.cause == g.cause && h.service == g.service && h.senderRole == g.senderRole && h.expected == g.expected {
				into, n = h, n+1
			}
		}
		if n != 1 {
			out = append(out, g)
			continue
		}
		into.absorb(g)
		delete(d.groups, g.groupKey)
	}
	d.order = out
}

// absorb adds h's resets to g.
func (g *group) absorb(h *group) {
	g.count += h.count
	if h.first.Before(g.first) {
		g.first = h.first
	}
	if h.last.After(g.last) {
		g.last = h.last
	}
	g.checked += h.checked
	g.clientsOnHost += h.clientsOnHost
	for _, m := range []struct{ to, from map[string]int }{{g.directions, h.directions}, {g.ifnames, h.ifnames}} {
		for k, n := range m.from {
			m.to[k] += n
		}
	}
	for k, n := range h.senders {
		g.senders[k] += n
	}
	for k, n := range h.peers {
		g.peers[k] += n
	}
	for k, p := range h.processes {
		if q, ok := g.processes[k]; ok {
			q.Count += p.Count
		} else {
			g.processes[k] = p
		}
	}
	if g.listener == nil {
		g.listener = h.listener
	}
	if h.lastListener.Known && (!g.lastListener.Known || h.lastListener.Until.After(g.lastListener.Until)) {
		g.lastListener = h.lastListener
	}
	if fromRank[h.from] > fromRank[g.from] {
		g.from = h.from
	}
}
