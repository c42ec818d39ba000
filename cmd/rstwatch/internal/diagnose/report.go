package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/proc/counters"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// The settings the report may quote, by their sysctl(8) names. All are per
// network namespace.
const (
	SysAbortOnOverflow = "net.ipv4.tcp_abort_on_overflow"
	SysSomaxconn       = "net.core.somaxconn"
	SysMaxSynBacklog   = "net.ipv4.tcp_max_syn_backlog"
	SysSyncookies      = "net.ipv4.tcp_syncookies"
)

// SysctlNames lists the settings to read into Diagnosis.Sysctls.
var SysctlNames = []string{SysAbortOnOverflow, SysSomaxconn, SysMaxSynBacklog, SysSyncookies}

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
		Findings: []Finding{}, Unexplained: []Unexplained{}, Listeners: []ListenerState{}, Notes: []Finding{},
		Sysctls: map[string]safe.String{}}
	if r.Alerts == nil {
		r.Alerts = []string{}
	}
	for k, v := range d.Sysctls {
		r.Sysctls[k] = safe.String(v)
	}

	r.Counters = CounterReport{Start: map[string]uint64{}, End: map[string]uint64{}, Rates: map[string]float64{}}
	for _, row := range counters.Rows(nil, d.C0, d.C1, d.End.Sub(d.Start)) {
		r.Counters.Start[row.Info.Name] = d.C0[row.Info.Key]
		r.Counters.End[row.Info.Name] = row.Total
		r.Counters.Rates[row.Info.Name] = round(row.Rate, 3)
	}

	failed, haveFailed := d.delta("AttemptFails")
	total := 0
	for _, g := range d.order {
		if g.kind == kindReset {
			total += g.count + g.trailing
		}
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

	d.mergePartial()
	for _, g := range d.order {
		f := d.finding(g, secs)
		if f.Expected {
			r.Notes = append(r.Notes, f)
		} else {
			r.Findings = append(r.Findings, f)
		}
	}
	// Overflows without resets (tcp_abort_on_overflow=0) leave only the
	// counter, the queues and the SYNs: make them findings of their own.
	if n, ok := d.delta("ListenOverflows"); ok && n > 0 {
		r.Findings = d.overflowFindings(r.Findings, secs)
	}
	for _, fs := range [][]Finding{r.Findings, r.Notes} {
		sort.SliceStable(fs, func(i, j int) bool {
			if fs[i].Count != fs[j].Count {
				return fs[i].Count > fs[j].Count
			}
			return fs[i].ServiceAddr < fs[j].ServiceAddr
		})
	}
	r.Unexplained = d.unexplained()

	addrs := make([]netip.AddrPort, 0, len(d.listeners))
	for a := range d.listeners {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].String() < addrs[j].String() })
	for _, a := range addrs {
		l := d.listeners[a]
		ls := ListenerState{Addr: a.String(), MaxQueue: l.maxQueue, Backlog: l.Backlog, Full: l.full, SYNs: l.syns, SYNsWhileFull: l.synsWhileFull}
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
	f := Finding{Kind: g.kind, Resent: g.resent, Cause: g.cause, Local: topAddrPort(g.senders).String(), Service: sniff.PortName(g.service.Port()), Count: g.count,
		RatePerS: round(g.rate(secs), 2), RunRatePerS: round(float64(g.count)/secs, 2), Listener: g.listener,
		Ifnames: []safe.String{}, Peers: []PeerCount{}, ServiceAddr: g.service.String(), ServiceFrom: g.from,
		SenderRole: g.senderRole, RolesKnown: g.senderRole != "", ListenChecked: g.checked, Expected: g.expected,
		Trailing: g.trailing}
	d.nameService(&f, g.service)
	f.spanS, f.synack = g.last.Sub(g.first).Seconds(), g.synack
	if g.icmpText != nil {
		f.icmpWhat, f.icmpBy = icmpSummary(g)
	}
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
	sortProcesses(f.Processes)
	if f.Processes == nil {
		f.Processes = []*ProcessRef{}
	}
	f.Programs = programs(f.Processes)
	f.Advice = safe.String(d.advice(&f))
	return f
}

func sortProcesses(ps []*ProcessRef) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Role != ps[j].Role {
			return ps[i].Role < ps[j].Role
		}
		return ps[i].PID < ps[j].PID
	})
}

// nameService names a finding's service: the program listening there (a
// fact of the listener samples or the verdicts), else the built-in port
// table's name, marked as a guess.
func (d *Diagnosis) nameService(f *Finding, service netip.AddrPort) {
	if l := d.listenerFor(service); l != nil && l.present && l.Process.Owned {
		f.ServiceName, f.ServiceNameFrom = safe.String(l.Process.Comm), "listener"
		return
	}
	if f.Listener != nil && f.Listener.Listening && f.Listener.Comm != "" {
		f.ServiceName, f.ServiceNameFrom = f.Listener.Comm, "listener"
		return
	}
	if f.Service != "" {
		f.ServiceName, f.ServiceNameFrom = safe.String(f.Service), "guess"
	}
}

// rate is the old rate_per_s: over the resets' own span when there are 3
// or more, else over the whole run. The text uses rate_per_s_run.
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

// topAddrPort is topKey for endpoints.
func topAddrPort(m map[netip.AddrPort]int) netip.AddrPort {
	var best netip.AddrPort
	n := 0
	for k, c := range m {
		if c > n || c == n && k.String() < best.String() {
			best, n = k, c
		}
	}
	return best
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
	for _, g := range d.order {
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
