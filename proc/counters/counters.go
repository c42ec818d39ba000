package counters

import (
	"fmt"
	"strings"
	"time"

	"github.com/rstwatch/rstwatch/proc"
)

// Info describes one kernel TCP counter that rstwatch reports.
type Info struct {
	Key     string // key in proc.Counters: "Prefix.Name" as /proc/net/snmp or netstat spells it
	Name    string // the name without its prefix, as stats prints it and --alert takes it
	Metric  string // Prometheus metric name
	Meaning string // what a rise usually means, in plain words
}

// catalogue holds the counters stats, the metrics and diagnose report, in
// display order: the /proc/net/snmp "Tcp:" ones (which count IPv6 too),
// then /proc/net/netstat "TcpExt:" ones. KERNEL-NOTES.md "Counters" has
// which scenario moves which.
var catalogue = [...]Info{
	{"Tcp.AttemptFails", "AttemptFails", "rstwatch_tcp_attempt_fails_total",
		"connections this host started that failed: refused (RST to a SYN) or timed out"},
	{"Tcp.EstabResets", "EstabResets", "rstwatch_tcp_estab_resets_total",
		"established connections ended by a reset, received or sent"},
	{"Tcp.OutRsts", "OutRsts", "rstwatch_tcp_out_rsts_total",
		"resets this host's TCP stack sent (a firewall's `reject with tcp reset` is not counted)"},
	{"Tcp.InErrs", "InErrs", "rstwatch_tcp_in_errs_total",
		"segments received with errors (bad checksum, malformed header): a bad link, NIC or middlebox"},
	{"Tcp.ActiveOpens", "ActiveOpens", "rstwatch_tcp_active_opens_total",
		"connections this host started (SYNs sent): the baseline for AttemptFails"},
	{"Tcp.PassiveOpens", "PassiveOpens", "rstwatch_tcp_passive_opens_total",
		"connections this host's listeners answered (SYN-ACKs sent): the baseline for ListenOverflows"},
	{"TcpExt.ListenOverflows", "ListenOverflows", "rstwatch_tcp_listen_overflows_total",
		"a listener's accept queue was full: the application accepts too slowly or its backlog is too small"},
	{"TcpExt.ListenDrops", "ListenDrops", "rstwatch_tcp_listen_drops_total",
		"connection attempts a listener dropped, for any reason (every ListenOverflows is also one)"},
	{"TcpExt.EmbryonicRsts", "EmbryonicRsts", "rstwatch_tcp_embryonic_rsts_total",
		"half-open connections (SYN-RECV) ended by a reset: the client gave up during the handshake, or the accept queue overflowed with tcp_abort_on_overflow=1"},
	{"TcpExt.TCPAbortOnData", "TCPAbortOnData", "rstwatch_tcp_abort_on_data_total",
		"resets this host sent because the application closed with SO_LINGER 0, or data arrived after it had closed"},
	{"TcpExt.TCPAbortOnClose", "TCPAbortOnClose", "rstwatch_tcp_abort_on_close_total",
		"resets this host sent because the application closed a socket with unread data"},
	{"TcpExt.TCPAbortOnMemory", "TCPAbortOnMemory", "rstwatch_tcp_abort_on_memory_total",
		"connections this host reset because TCP memory or the orphan limit ran out (tcp_mem, tcp_max_orphans)"},
	{"TcpExt.TCPAbortOnTimeout", "TCPAbortOnTimeout", "rstwatch_tcp_abort_on_timeout_total",
		"connections this host gave up on after retransmitting or probing too long: the peer or the path went away"},
	{"TcpExt.TCPAbortFailed", "TCPAbortFailed", "rstwatch_tcp_abort_failed_total",
		"resets this host wanted to send but could not (no memory)"},
	{"TcpExt.TCPSynRetrans", "TCPSynRetrans", "rstwatch_tcp_syn_retrans_total",
		"SYNs and SYN-ACKs sent again: the peer or the path drops them, or a listener's queue is full"},
	{"TcpExt.TCPTimeouts", "TCPTimeouts", "rstwatch_tcp_timeouts_total",
		"retransmission timeouts: packet loss, or a peer that stopped answering"},
}

// Catalogue returns the counters rstwatch reports, in display order. The
// elements are the ones Find, Row.Info and Rule.Counter point to; callers
// must not modify them.
func Catalogue() []Info { return catalogue[:] }

// Names returns the short names of the counters rstwatch reports
// ("AttemptFails", "ListenOverflows", ...) in display order. Not every
// kernel has all of them; Read returns those it has.
func Names() []string {
	names := make([]string, len(catalogue))
	for i := range catalogue {
		names[i] = catalogue[i].Name
	}
	return names
}

// Find looks a counter up by name: the short name or the full key
// ("AttemptFails", "Tcp.AttemptFails", "tcpext.listenoverflows"), ignoring
// case.
func Find(name string) (*Info, bool) {
	for i := range catalogue {
		if ci := &catalogue[i]; strings.EqualFold(name, ci.Name) || strings.EqualFold(name, ci.Key) {
			return ci, true
		}
	}
	return nil, false
}

// Meaning returns what a rise of the named counter usually means, in
// plain words, or "" for a counter rstwatch does not know. name is as Find
// takes it.
func Meaning(name string) string {
	if ci, ok := Find(name); ok {
		return ci.Meaning
	}
	return ""
}

// Read reads the counters of the catalogue that the kernel reports from
// p's /proc/net/snmp and /proc/net/netstat (those of the network namespace
// p's net directory belongs to; /proc/net follows the process's main
// thread), keyed as proc.Counters keys them ("Tcp.AttemptFails"). Counters
// the kernel does not have are absent, not an error.
func Read(p proc.FS) (proc.Counters, error) {
	c, err := ReadFrom(p.Counters)
	if err == nil && len(c) == 0 {
		err = fmt.Errorf("no TCP counters in %s or %s", p.Path("net", "snmp"), p.Path("net", "netstat"))
	}
	return c, err
}

// ReadFrom keeps the counters of the catalogue from what read returns
// (all of /proc/net/snmp and netstat, of some namespace).
func ReadFrom(read func() (proc.Counters, error)) (proc.Counters, error) {
	all, err := read()
	if err != nil {
		return nil, err
	}
	c := make(proc.Counters, len(catalogue))
	for i := range catalogue {
		if v, ok := all[catalogue[i].Key]; ok {
			c[catalogue[i].Key] = v
		}
	}
	if len(c) == 0 {
		return nil, fmt.Errorf("no TCP counters found")
	}
	return c, nil
}

// Row is one counter over one interval.
type Row struct {
	Info    *Info         // an element of Catalogue()
	Total   uint64        // the value at the end of the interval
	Delta   uint64        // the change over the interval
	Rate    float64       // Delta per second
	Elapsed time.Duration // the interval's length
}

// Rows appends to dst a row for each counter present in both prev and
// cur, in display order. A counter that went backwards (only when a
// namespace was recreated) counts as reset to zero, so its delta is its
// new value.
func Rows(dst []Row, prev, cur proc.Counters, elapsed time.Duration) []Row {
	for i := range catalogue {
		ci := &catalogue[i]
		v, ok := cur[ci.Key]
		p, okp := prev[ci.Key]
		if !ok || !okp {
			continue
		}
		d := v - p
		if v < p {
			d = v
		}
		var rate float64
		if elapsed > 0 {
			rate = float64(d) / elapsed.Seconds()
		}
		dst = append(dst, Row{Info: ci, Total: v, Delta: d, Rate: rate, Elapsed: elapsed})
	}
	return dst
}
