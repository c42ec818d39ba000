package diagnose

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/render"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// kindReset is the kind of a reset's finding.
const kindReset = "reset"

// kindOf is an event's kind as findings spell it.
func kindOf(v *explain.Verdict) string {
	if v.Kind > explain.KindReset {
		return v.Kind.String()
	}
	return kindReset
}

// addFailure records an unanswered handshake or an ICMP error in g and
// reports whether e was one. An unanswered connection counts once, at its
// first retransmission; later ones add to g.resent only.
func (d *Diagnosis) addFailure(g *group, e *sniff.Event, v *explain.Verdict) bool {
	switch v.Kind {
	case explain.KindUnanswered:
		if e.Flags&(sniff.FlagSYN|sniff.FlagACK) == sniff.FlagSYN {
			// Still a SYN: it counts for its listener (overflows) and
			// the handshake, as the first one did.
			d.Observe(e)
		}
		g.resent++
		g.synack = g.synack || e.Flags.Has(sniff.FlagSYN|sniff.FlagACK)
		if v.Attempts > 2 {
			g.last = e.Time
			return true
		}
	case explain.KindUnreachable:
		if g.icmpFrom == nil {
			g.icmpFrom, g.icmpText = map[netip.Addr]int{}, map[string]int{}
		}
		g.icmpFrom[e.ICMP.From]++
		g.icmpText[e.ICMP.String()]++
		if !e.ICMP.V6 && e.ICMP.Type == sniff.ICMPDestUnreachable {
			g.icmpV4DU++
		}
	default:
		return false
	}
	if v.Sender.Local == explain.True {
		g.localClients++
	}
	g.add(e, v, fromSYN)
	return true
}

// failureAdvice is the sentence of an unanswered or unreachable finding:
// who could not connect where, how it shows, and what to check.
func failureAdvice(f *Finding, clients string) (string, bool) {
	from := "connections to " + f.ServiceAddr
	if clients != "" {
		from = "connections from " + clients + " to " + f.ServiceAddr
	}
	switch f.Kind {
	case explain.KindUnanswered.String():
		if f.synack {
			return fmt.Sprintf("%s never complete the handshake: %s sent again %d times in %.0f s. The client went away, the return path to it is broken, or a SYN flood: "+
				"check the route back to the clients and the firewall on it; many at once from many addresses is a flood (net.ipv4.tcp_syncookies)",
				from, "the SYN-ACK was", f.Resent, f.spanS), true
		}
		if l := f.Listener; l != nil && l.Listening && l.Backlog > 0 && l.Queue >= l.Backlog {
			return fmt.Sprintf("%s time out: %s unanswered (%s sent again) in %.0f s while the listener's accept queue was full (%d/%d): "+
				"the application accepts too slowly or its backlog is too small (see the overflow finding)",
				from, render.Plural(f.Count, "connection"), render.Plural(f.Resent, "SYN"), f.spanS, l.Queue, l.Backlog), true
		}
		return fmt.Sprintf("%s time out: %s unanswered (%s sent again) in %.0f s. A firewall drops them, the host is down, or the route is broken: "+
			"check the path (ip route get %s; a firewall on the way or on the server that drops; is the server up)",
			from, render.Plural(f.Count, "connection"), render.Plural(f.Resent, "SYN"), f.spanS, addrOf(f.ServiceAddr)), true
	case explain.KindUnreachable.String():
		if f.Cause == explain.Rejected.String() {
			return fmt.Sprintf("%s are refused with ICMP (%s, from %s): a firewall's reject rule (nft reject, iptables -j REJECT) or a policy: "+
				"check the firewall rules there (nft list ruleset, iptables -S)", from, f.icmpWhat, f.icmpBy), true
		}
		return fmt.Sprintf("%s cannot be made: %s says %s. The route is missing or broken, or the host is down: check routing (ip route get %s) and the host",
			from, f.icmpBy, f.icmpWhat, addrOf(f.ServiceAddr)), true
	}
	return "", false
}

// icmpSummary says the ICMP errors of g in words, most frequent first,
// and who sent them.
func icmpSummary(g *group) (what, by string) {
	type kv struct {
		k string
		n int
	}
	var ws []kv
	for k, n := range g.icmpText {
		ws = append(ws, kv{k, n})
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].n > ws[j].n || ws[i].n == ws[j].n && ws[i].k < ws[j].k })
	var parts []string
	for _, w := range ws {
		parts = append(parts, w.k)
	}
	var froms []string
	for a := range g.icmpFrom {
		who := a.String()
		if a == g.service.Addr() {
			who += " (the destination)"
		} else {
			who = "router " + who
		}
		froms = append(froms, who)
	}
	sort.Strings(froms)
	return strings.Join(parts, ", "), strings.Join(froms, ", ")
}

// icmp4 counts g's ICMP errors that Icmp InDestUnreachs counts: IPv4
// destination unreachable (type 3).
func (g *group) icmp4() int {
	return g.icmpV4DU
}
