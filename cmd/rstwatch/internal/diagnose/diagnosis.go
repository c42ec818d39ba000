package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/render"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// Diagnosis accumulates what diagnose sees (resets with their verdicts,
// listener samples, counters) and turns it into a report. It does no I/O,
// so a test can feed it a fixed input. It is not safe for concurrent use.
type Diagnosis struct {
	Start, End time.Time
	// Counters at the start and the end (nil: not read); Uptime is the
	// seconds since boot at the end, for the "is this new" comparison (0:
	// unknown).
	C0, C1 proc.Counters
	Uptime float64

	Drops   uint64   // kernel drops of the capture
	Offline bool     // the resets come from a capture file
	Alerts  []string // alert rules that fired, in words (see EvalAlerts)

	groups    map[groupKey]*group
	listeners map[netip.AddrPort]*listenerSample

	sent, received int // resets whose sender / target is on this host
}

type groupKey struct {
	cause    explain.Cause
	endpoint netip.AddrPort // the resets' sender: the port that refused, aborted, ...
}

// group is one finding in the making: resets with the same cause from the
// same endpoint.
type group struct {
	groupKey
	count         int
	first, last   time.Time
	senderLocal   explain.Tri
	directions    map[string]int
	ifnames       map[string]int
	peers         map[netip.Addr]int
	processes     map[string]*ProcessRef // by role and pid
	listener      *ListenerRef
	lastListener  explain.LastListener
	clientsOnHost int // resets received by a socket on this host
}

// listenerSample is the fullest a listener's accept queue was seen.
type listenerSample struct {
	explain.Listener
	maxQueue uint32
	full     bool
}

// New returns an empty diagnosis of a run that started at start with the
// counters c0 (nil if they could not be read).
func New(start time.Time, c0 proc.Counters) *Diagnosis {
	return &Diagnosis{Start: start, C0: c0, groups: map[groupKey]*group{}, listeners: map[netip.AddrPort]*listenerSample{}}
}

// Add records one explained reset.
func (d *Diagnosis) Add(e *sniff.Event, v *explain.Verdict) {
	k := groupKey{v.Cause, netip.AddrPortFrom(e.Src.Addr().Unmap(), e.Src.Port())}
	g := d.groups[k]
	if g == nil {
		g = &group{groupKey: k, first: e.Time, directions: map[string]int{}, ifnames: map[string]int{},
			peers: map[netip.Addr]int{}, processes: map[string]*ProcessRef{}, senderLocal: v.Sender.Local}
		d.groups[k] = g
	}
	g.count++
	g.last = e.Time
	g.directions[e.Direction.String()]++
	if e.Ifname != "" {
		g.ifnames[e.Ifname]++
	}
	g.peers[e.Dst.Addr().Unmap()]++
	if v.Sender.Local == explain.True {
		d.sent++
	}
	if v.Target.Local == explain.True {
		d.received++
		g.clientsOnHost++
	}
	g.addProcess("sender", &v.Sender.Process)
	g.addProcess("client", &v.Target.Process)
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

// SampleListeners records the listeners' accept queues.
func (d *Diagnosis) SampleListeners(ls []explain.Listener) {
	for _, l := range ls {
		s := d.listeners[l.Addr]
		if s == nil {
			s = &listenerSample{Listener: l}
			d.listeners[l.Addr] = s
		}
		if l.Process.Owned {
			s.Process = l.Process
		}
		s.Backlog = l.Backlog
		s.maxQueue = max(s.maxQueue, l.Queue)
		s.full = s.full || l.Backlog > 0 && l.Queue >= l.Backlog
	}
}

// Report is diagnose's output; its JSON field names are a contract (issue
// 3/6): add fields, never rename or drop them.
type Report struct {
	DurationS   float64         `json:"duration_s"`
	Offline     bool            `json:"offline,omitempty"`
	Headline    Headline        `json:"headline"`
	Counters    CounterReport   `json:"counters"`
	Findings    []Finding       `json:"findings"`
	Unexplained []Unexplained   `json:"unexplained"`
	Drops       uint64          `json:"drops"`
	Alerts      []string        `json:"alerts"`
	Abnormal    bool            `json:"abnormal"`
	Listeners   []ListenerState `json:"listeners"`
}

// Headline sums the run up: the failed-connection rate, the resets' rates
// and whether the failures are new.
type Headline struct {
	FailedPerS       float64  `json:"failed_connections_per_s"`
	SentPerS         float64  `json:"resets_sent_per_s"`
	ReceivedPerS     float64  `json:"resets_received_per_s"`
	SinceBootPerS    *float64 `json:"failed_connections_per_s_since_boot"`
	New              bool     `json:"new"`
	Text             string   `json:"text"`
	ResetsTotal      int      `json:"resets"`
	FailedTotal      uint64   `json:"failed_connections"`
	ResetsSentTotal  int      `json:"resets_sent"`
	ResetsRecvdTotal int      `json:"resets_received"`
}

// CounterReport holds the kernel counters at the start and the end of the
// run, and their rates, by short name.
type CounterReport struct {
	Start map[string]uint64  `json:"start"`
	End   map[string]uint64  `json:"end"`
	Rates map[string]float64 `json:"rates"`
}

// Finding is one cause at one endpoint, with the next step to take.
// Strings that may carry outside text (process and interface names) are
// safe.String, so encoding/json writes them through the one escaper.
type Finding struct {
	Cause     string        `json:"cause"`
	Local     string        `json:"local"`             // the endpoint that sent the resets (on this host when sender_local)
	Service   string        `json:"service,omitempty"` // the port's well-known service, from a table built in
	SenderLoc *bool         `json:"sender_local"`
	Count     int           `json:"count"`
	RatePerS  float64       `json:"rate_per_s"` // over the resets' own span when there are 3 or more
	Direction string        `json:"direction"`
	Ifnames   []safe.String `json:"ifnames"`
	Peers     []PeerCount   `json:"peers"`
	Processes []*ProcessRef `json:"processes"`
	Listener  *ListenerRef  `json:"listener"`
	Advice    safe.String   `json:"advice"`
}

// PeerCount is how many of a finding's resets went to one peer.
type PeerCount struct {
	Addr  string `json:"addr"`
	Count int    `json:"count"`
}

// ProcessRef is a process a finding involves, in one role.
type ProcessRef struct {
	Role  string      `json:"role"` // sender, client, listener, last_listener
	PID   int         `json:"pid"`
	Comm  safe.String `json:"comm"`
	UID   uint32      `json:"uid"`
	Count int         `json:"count,omitempty"`
	Until *time.Time  `json:"until,omitempty"`
}

// ListenerRef is the listener of a finding's endpoint, or the last one.
type ListenerRef struct {
	Listening bool        `json:"listening"`
	PID       int         `json:"pid,omitempty"`
	Comm      safe.String `json:"comm,omitempty"`
	Queue     uint32      `json:"queue"`
	Backlog   uint32      `json:"backlog"`
	Until     *time.Time  `json:"until,omitempty"` // for a listener that is gone
}

// ListenerState is the fullest a listener's accept queue was seen.
type ListenerState struct {
	Addr     string      `json:"addr"`
	PID      int         `json:"pid,omitempty"`
	Comm     safe.String `json:"comm,omitempty"`
	MaxQueue uint32      `json:"max_queue"`
	Backlog  uint32      `json:"backlog"`
	Full     bool        `json:"full"`
}

// Unexplained is what the counters saw that the resets do not account for.
type Unexplained struct {
	Kind  string `json:"kind"`
	Count uint64 `json:"count"`
	Text  string `json:"text"`
}

// delta returns how much a counter (short name) rose.
func (d *Diagnosis) delta(name string) (uint64, bool) {
	ci, ok := counters.Find(name)
	if !ok {
		return 0, false
	}
	a, ok0 := d.C0[ci.Key]
	b, ok1 := d.C1[ci.Key]
	if !ok0 || !ok1 {
		return 0, false
	}
	if b < a {
		return b, true
	}
	return b - a, true
}

// Report turns what was seen into the report.
func (d *Diagnosis) Report() *Report {
	secs := d.End.Sub(d.Start).Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	r := &Report{DurationS: round(secs, 3), Drops: d.Drops, Offline: d.Offline, Alerts: d.Alerts,
		Findings: []Finding{}, Unexplained: []Unexplained{}, Listeners: []ListenerState{}}
	if r.Alerts == nil {
		r.Alerts = []string{}
	}

	r.Counters = CounterReport{Start: map[string]uint64{}, End: map[string]uint64{}, Rates: map[string]float64{}}
	for _, row := range counters.Rows(nil, d.C0, d.C1, d.End.Sub(d.Start)) {
		r.Counters.Start[row.Info.Name] = d.C0[row.Info.Key]
		r.Counters.End[row.Info.Name] = row.Total
		r.Counters.Rates[row.Info.Name] = round(row.Rate, 3)
	}

	failed, haveFailed := d.delta("AttemptFails")
	total := 0
	for _, g := range d.groups {
		total += g.count
	}
	h := &r.Headline
	h.ResetsTotal, h.FailedTotal, h.ResetsSentTotal, h.ResetsRecvdTotal = total, failed, d.sent, d.received
	h.FailedPerS = round(float64(failed)/secs, 2)
	h.SentPerS = round(float64(d.sent)/secs, 2)
	h.ReceivedPerS = round(float64(d.received)/secs, 2)
	if all, ok := d.C1["Tcp.AttemptFails"]; ok && d.Uptime > 0 {
		avg := round(float64(all)/d.Uptime, 2)
		h.SinceBootPerS = &avg
		h.New = h.FailedPerS > 0 && h.FailedPerS > 2*avg
	}
	h.Text = headlineText(h, haveFailed)

	for _, g := range d.groups {
		r.Findings = append(r.Findings, d.finding(g, secs))
	}
	// Overflows without resets (tcp_abort_on_overflow=0) leave only the
	// counter and the queue: make them a finding of their own.
	if n, ok := d.delta("ListenOverflows"); ok && n > 0 {
		r.Findings = d.overflowFindings(r.Findings, n, secs)
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		if r.Findings[i].Count != r.Findings[j].Count {
			return r.Findings[i].Count > r.Findings[j].Count
		}
		return r.Findings[i].Local < r.Findings[j].Local
	})
	r.Unexplained = d.unexplained()

	addrs := make([]netip.AddrPort, 0, len(d.listeners))
	for a := range d.listeners {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].String() < addrs[j].String() })
	for _, a := range addrs {
		l := d.listeners[a]
		ls := ListenerState{Addr: a.String(), MaxQueue: l.maxQueue, Backlog: l.Backlog, Full: l.full}
		if l.Process.Owned {
			ls.PID, ls.Comm = l.Process.PID, safe.String(l.Process.Comm)
		}
		r.Listeners = append(r.Listeners, ls)
	}
	r.Abnormal = len(r.Findings) > 0 || len(r.Unexplained) > 0 || len(r.Alerts) > 0
	return r
}

func round(f float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if f < 0 {
		return -float64(int64(-f*p+0.5)) / p
	}
	return float64(int64(f*p+0.5)) / p
}

func headlineText(h *Headline, haveFailed bool) string {
	var b strings.Builder
	if haveFailed {
		fmt.Fprintf(&b, "%.2f failed connections/s", h.FailedPerS)
	} else {
		b.WriteString("failed connections unknown (no kernel counters)")
	}
	fmt.Fprintf(&b, ", %.2f resets/s sent, %.2f resets/s received", h.SentPerS, h.ReceivedPerS)
	if h.SinceBootPerS != nil {
		if h.New {
			fmt.Fprintf(&b, "; this is new: since boot the average is %.2f failed connections/s", *h.SinceBootPerS)
		} else {
			fmt.Fprintf(&b, "; since boot the average is %.2f failed connections/s", *h.SinceBootPerS)
		}
	}
	return b.String()
}

// finding describes one group.
func (d *Diagnosis) finding(g *group, secs float64) Finding {
	f := Finding{Cause: g.cause.String(), Local: g.endpoint.String(), Service: sniff.PortName(g.endpoint.Port()), Count: g.count,
		RatePerS: round(g.rate(secs), 2), Listener: g.listener, Ifnames: []safe.String{}, Peers: []PeerCount{}}
	if g.senderLocal != explain.Null {
		b := g.senderLocal == explain.True
		f.SenderLoc = &b
	}
	f.Direction = topKey(g.directions)
	for name := range g.ifnames {
		f.Ifnames = append(f.Ifnames, safe.String(name))
	}
	slices.Sort(f.Ifnames)
	for a, n := range g.peers {
		f.Peers = append(f.Peers, PeerCount{a.String(), n})
	}
	sort.Slice(f.Peers, func(i, j int) bool {
		if f.Peers[i].Count != f.Peers[j].Count {
			return f.Peers[i].Count > f.Peers[j].Count
		}
		return f.Peers[i].Addr < f.Peers[j].Addr
	})
	if len(f.Peers) > 5 {
		f.Peers = f.Peers[:5]
	}
	for _, p := range g.processes {
		f.Processes = append(f.Processes, p)
	}
	if l := g.lastListener; l.Known && l.PID > 0 {
		until := l.Until
		f.Processes = append(f.Processes, &ProcessRef{Role: "last_listener", PID: l.PID, Comm: safe.String(l.Comm), UID: l.UID, Until: &until})
		if f.Listener == nil {
			f.Listener = &ListenerRef{Listening: false, PID: l.PID, Comm: safe.String(l.Comm), Until: &until}
		}
	}
	sort.Slice(f.Processes, func(i, j int) bool {
		if f.Processes[i].Role != f.Processes[j].Role {
			return f.Processes[i].Role < f.Processes[j].Role
		}
		return f.Processes[i].PID < f.Processes[j].PID
	})
	if f.Processes == nil {
		f.Processes = []*ProcessRef{}
	}
	f.Advice = safe.String(advice(g, &f))
	return f
}

// rate is how often the group's resets came: over their own span when
// there are enough of them to measure one ("connects there twice a
// second" is about the clients' pace, not the length of the run), else
// over the whole run.
func (g *group) rate(secs float64) float64 {
	if span := g.last.Sub(g.first).Seconds(); g.count >= 3 && span > 0 {
		return float64(g.count-1) / span
	}
	return float64(g.count) / secs
}

// topKey returns the most frequent key ("" for none); ties go to the
// alphabetically first.
func topKey(m map[string]int) string {
	best, n := "", 0
	for k, c := range m {
		if c > n || c == n && k < best {
			best, n = k, c
		}
	}
	return best
}

// advice is the finding's one plain-words sentence with the next step.
func advice(g *group, f *Finding) string {
	ep := f.Local
	rate := fmt.Sprintf("%s a second", timesPerSecond(f.RatePerS))
	clients := func() string {
		var names []string
		for _, p := range f.Processes {
			if p.Role == "client" {
				names = append(names, fmt.Sprintf("process %s (pid %d)", safe.Text(string(p.Comm)), p.PID))
			}
		}
		switch {
		case len(names) > 0:
			return strings.Join(names, ", ") + " connects there " + rate
		case g.clientsOnHost > 0:
			return "clients on this host connect there " + rate
		default:
			return fmt.Sprintf("%s connect there %s", peerList(f.Peers), rate)
		}
	}
	local := g.senderLocal == explain.True
	switch g.cause {
	case explain.Refused:
		if !local {
			return fmt.Sprintf("%s refuses connections: nothing listens there; %s: check that service, or the clients' configuration", ep, clients())
		}
		s := fmt.Sprintf("nothing listens on %s; %s", ep, clients())
		if l := g.lastListener; l.Known && l.PID > 0 {
			s += fmt.Sprintf("; %s (pid %d) listened there until %s", safe.Text(l.Comm), l.PID, l.Until.Format("15:04:05"))
			return s + ": start it or fix the client"
		}
		return s + ": start the service or fix the client"
	case explain.Rejected:
		who := ""
		if f.Listener != nil && f.Listener.PID > 0 {
			who = fmt.Sprintf(" although %s (pid %d) listens there", safe.Text(string(f.Listener.Comm)), f.Listener.PID)
		}
		return fmt.Sprintf("a firewall or policy resets connections to %s%s; %s: check the firewall rules (nft list ruleset, iptables -S)", ep, who, clients())
	case explain.Overflow:
		s := "listener " + ep
		if f.Listener != nil && f.Listener.PID > 0 {
			s += fmt.Sprintf(" (%s pid %d)", safe.Text(string(f.Listener.Comm)), f.Listener.PID)
		}
		if f.Listener != nil && f.Listener.Backlog > 0 {
			s += fmt.Sprintf(" has a full accept queue %d/%d", f.Listener.Queue, f.Listener.Backlog)
		} else {
			s += " has a full accept queue"
		}
		return s + ": it accepts too slowly; raise its backlog or net.core.somaxconn, or make it accept faster"
	case explain.Abort:
		who := ep
		for _, p := range f.Processes {
			if p.Role == "sender" {
				who = fmt.Sprintf("%s (pid %d) on %s", safe.Text(string(p.Comm)), p.PID, ep)
				break
			}
		}
		if !local {
			who = "the peer " + ep
		}
		return fmt.Sprintf("%s aborted %s (SO_LINGER 0, closed with unread data, or a listener closed with connections pending): check that application", who, render.Plural(f.Count, "connection"))
	case explain.Stale:
		return fmt.Sprintf("%s reached %s for connections it no longer has: a peer kept using a connection after a restart, a NAT or conntrack timeout, or resets that were lost", render.Plural(f.Count, "segment"), ep)
	}
	return fmt.Sprintf("%s of an unusual shape from %s: look at them with `rstwatch watch --port %d`", render.Plural(f.Count, "reset"), ep, g.endpoint.Port())
}

func timesPerSecond(r float64) string {
	switch {
	case r >= 1.75 && r < 2.25:
		return "twice"
	case r >= 0.75 && r < 1.25:
		return "once"
	}
	return fmt.Sprintf("%.1f times", r)
}

func peerList(peers []PeerCount) string {
	if len(peers) == 0 {
		return "peers"
	}
	var names []string
	for _, p := range peers {
		names = append(names, p.Addr)
	}
	return strings.Join(names, ", ")
}

// overflowFindings explains ListenOverflows with the listeners seen full,
// merging into an overflow finding from resets when there is one.
func (d *Diagnosis) overflowFindings(fs []Finding, n uint64, secs float64) []Finding {
	var full []*listenerSample
	for _, l := range d.listeners {
		if l.full {
			full = append(full, l)
		}
	}
	if len(full) == 0 {
		// Queues drain between samples: name the fullest listener.
		var best *listenerSample
		for _, l := range d.listeners {
			if l.Backlog > 0 && (best == nil || float64(l.maxQueue)/float64(l.Backlog) > float64(best.maxQueue)/float64(best.Backlog)) {
				best = l
			}
		}
		if best != nil && best.maxQueue > 0 {
			full = append(full, best)
		}
	}
	sort.Slice(full, func(i, j int) bool { return full[i].Addr.String() < full[j].Addr.String() })
	for _, l := range full {
		merged := false
		for i := range fs {
			if fs[i].Cause == explain.Overflow.String() && fs[i].Local == l.Addr.String() {
				merged = true
				break
			}
		}
		if merged {
			continue
		}
		ref := &ListenerRef{Listening: true, Queue: l.maxQueue, Backlog: l.Backlog}
		procs := []*ProcessRef{}
		if l.Process.Owned {
			ref.PID, ref.Comm = l.Process.PID, safe.String(l.Process.Comm)
			procs = append(procs, &ProcessRef{Role: "listener", PID: l.Process.PID, Comm: safe.String(l.Process.Comm), UID: l.Process.UID})
		}
		count := int(n) / len(full)
		f := Finding{Cause: explain.Overflow.String(), Local: l.Addr.String(), Service: sniff.PortName(l.Addr.Port()), Count: count,
			RatePerS: round(float64(count)/secs, 2), Ifnames: []safe.String{}, Peers: []PeerCount{}, Processes: procs, Listener: ref}
		t := true
		f.SenderLoc = &t
		g := &group{groupKey: groupKey{explain.Overflow, l.Addr}, senderLocal: explain.True}
		f.Advice = safe.String(advice(g, &f) + fmt.Sprintf(" (ListenOverflows +%d; without net.ipv4.tcp_abort_on_overflow the clients get no reset: they retry, then time out)", n))
		fs = append(fs, f)
	}
	return fs
}

// unexplained lists what the counters saw that the captured resets do not
// account for.
func (d *Diagnosis) unexplained() []Unexplained {
	out := []Unexplained{}
	refusedHere := 0 // failed connects of local clients that a reset explains
	sentCounted := 0 // resets the stack sent: netfilter's are not in OutRsts
	for _, g := range d.groups {
		switch g.cause {
		case explain.Refused, explain.Rejected, explain.Overflow:
			refusedHere += g.clientsOnHost
		}
		if g.senderLocal == explain.True {
			sentCounted += g.count
		}
	}
	if failed, ok := d.delta("AttemptFails"); ok && failed > uint64(refusedHere) {
		n := failed - uint64(refusedHere)
		syn, _ := d.delta("TCPSynRetrans")
		to, _ := d.delta("TCPTimeouts")
		out = append(out, Unexplained{Kind: "failed_without_reset", Count: n, Text: fmt.Sprintf(
			"%d failed connection attempts drew no reset: their SYNs timed out or were dropped (TCPSynRetrans +%d, TCPTimeouts +%d): a firewall dropping, a host down, or a full accept queue", n, syn, to)})
	}
	if out2, ok := d.delta("OutRsts"); ok && uint64(sentCounted) > out2 {
		n := uint64(sentCounted) - out2
		out = append(out, Unexplained{Kind: "resets_not_counted", Count: n, Text: fmt.Sprintf(
			"%d resets left this host that its TCP stack did not count (OutRsts +%d): a firewall rule (reject with tcp reset) sent them", n, out2)})
	}
	if n, ok := d.delta("ListenOverflows"); ok && n > 0 {
		seen := false
		for _, g := range d.groups {
			seen = seen || g.cause == explain.Overflow
		}
		if !seen {
			out = append(out, Unexplained{Kind: "listen_overflow_without_reset", Count: n, Text: fmt.Sprintf(
				"ListenOverflows +%d with no overflow reset: net.ipv4.tcp_abort_on_overflow is 0, so full accept queues drop handshakes silently", n)})
		}
	}
	return out
}

// EvalAlerts adds to Alerts, in words, each rule that holds over the whole
// run: the change of its counter from C0 to C1, or its rate over End-Start.
func (d *Diagnosis) EvalAlerts(rules []counters.Rule) {
	for _, row := range counters.Rows(nil, d.C0, d.C1, d.End.Sub(d.Start)) {
		for i := range rules {
			if rules[i].Counter == row.Info && rules[i].Holds(row) {
				d.Alerts = append(d.Alerts, fmt.Sprintf("%s: %s rose by %d in %s (%.2f/s); it counts %s",
					rules[i].Text, row.Info.Name, row.Delta, row.Elapsed.Round(time.Millisecond), row.Rate, row.Info.Meaning))
			}
		}
	}
}

// FileSpan returns the time the resets span (1s when fewer than two): the
// run's start and end when they come from a capture file.
func (d *Diagnosis) FileSpan() (time.Time, time.Time) {
	var first, last time.Time
	for _, g := range d.groups {
		if first.IsZero() || g.first.Before(first) {
			first = g.first
		}
		if g.last.After(last) {
			last = g.last
		}
	}
	if first.IsZero() || !last.After(first) {
		return first, first.Add(time.Second)
	}
	return first, last
}
