package diagnose

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"

	"github.com/rstwatch/rstwatch/sniff/explain"
)

// unexplained lists what the counters saw that the captured resets do not
// account for. Counters and resets cover one window (Start to End), and
// each sentence claims only what its numbers show.
func (d *Diagnosis) unexplained() []Unexplained {
	out := []Unexplained{}
	answered := 0    // failed connects of local clients that a captured reset explains
	sentCounted := 0 // resets the stack sent: netfilter's are not in OutRsts
	overflowResets := false
	for _, g := range d.order {
		answered += g.clientsOnHost
		if g.senderLocal == explain.True {
			sentCounted += g.count
		}
		overflowResets = overflowResets || g.cause == explain.Overflow.String()
	}
	if failed, ok := d.delta("AttemptFails"); ok && failed > uint64(answered) {
		n := failed - uint64(answered)
		syn, _ := d.delta("TCPSynRetrans")
		to, _ := d.delta("TCPTimeouts")
		var text string
		if syn > 0 || to > 0 {
			var seen []string
			if syn > 0 {
				seen = append(seen, fmt.Sprintf("SYNs were retransmitted (TCPSynRetrans +%d)", syn))
			}
			if to > 0 {
				seen = append(seen, fmt.Sprintf("retransmissions timed out (TCPTimeouts +%d)", to))
			}
			text = fmt.Sprintf("%d failed connection attempts (AttemptFails +%d) drew no captured reset; meanwhile %s: a firewall dropping, a host down, or a full accept queue",
				n, failed, strings.Join(seen, " and "))
		} else {
			text = fmt.Sprintf("%d failed connection attempts (AttemptFails +%d) drew no captured reset, and no SYN was retransmitted (TCPSynRetrans +0, TCPTimeouts +0): this report cannot tell why (a reset outside the capture's filter, or an ICMP error)",
				n, failed)
		}
		out = append(out, Unexplained{Kind: "failed_without_reset", Count: n, Text: text})
	}
	if out2, ok := d.delta("OutRsts"); ok && uint64(sentCounted) > out2 {
		n := uint64(sentCounted) - out2
		out = append(out, Unexplained{Kind: "resets_not_counted", Count: n, Text: fmt.Sprintf(
			"%d resets left this host that its TCP stack did not count (OutRsts +%d): a firewall rule (reject with tcp reset) sent them", n, out2)})
	}
	if n, ok := d.delta("ListenOverflows"); ok && n > 0 && !overflowResets {
		out = append(out, Unexplained{Kind: "listen_overflow_without_reset", Count: n, Text: d.overflowText(n)})
	}
	return out
}

// overflowText says what the namespace-wide ListenOverflows counter rose
// by, once, and which listeners it is blamed on.
func (d *Diagnosis) overflowText(n uint64) string {
	s := fmt.Sprintf("ListenOverflows +%d in this network namespace with no overflow reset captured", n)
	switch d.Sysctls[SysAbortOnOverflow] {
	case "0":
		s += ": net.ipv4.tcp_abort_on_overflow is 0, so full accept queues drop handshakes silently (the clients retry, then time out)"
	case "":
		s += " (net.ipv4.tcp_abort_on_overflow was not read)"
	default:
		s += fmt.Sprintf(", although net.ipv4.tcp_abort_on_overflow is %s", safe.Text(d.Sysctls[SysAbortOnOverflow]))
	}
	var blamed []string
	for _, l := range d.listeners {
		if l.synsWhileFull > 0 {
			blamed = append(blamed, l.Addr.String())
		}
	}
	sort.Strings(blamed)
	if len(blamed) > 0 {
		s += "; listeners seen full while SYNs arrived for them: " + strings.Join(blamed, ", ")
	} else {
		s += "; no listener was seen full while SYNs arrived for it (queues drain between samples)"
	}
	return s
}
