package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/caps"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/namespaces"
)

// counterInfo describes one kernel TCP counter that rstwatch reports.
type counterInfo struct {
	key     string // key in proc.Counters: "Prefix.Name" as /proc/net/snmp or netstat spells it
	name    string // the name without its prefix, as stats prints it and --alert takes it
	metric  string // Prometheus metric name
	meaning string // what a rise usually means, in plain words
}

// tcpCounters are the counters stats, the metrics and diagnose report, in
// display order: the /proc/net/snmp "Tcp:" ones (which count IPv6 too),
// then /proc/net/netstat "TcpExt:" ones. KERNEL-NOTES.md "Counters" has
// which scenario moves which.
var tcpCounters = [...]counterInfo{
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

// counterNames returns the short names of the counters rstwatch reports
// ("AttemptFails", "ListenOverflows", ...) in display order. Not every
// kernel has all of them; readCounters returns those it has.
func counterNames() []string {
	names := make([]string, len(tcpCounters))
	for i := range tcpCounters {
		names[i] = tcpCounters[i].name
	}
	return names
}

// findCounter looks a counter up by name: the short name or the full key
// ("AttemptFails", "Tcp.AttemptFails", "tcpext.listenoverflows"), ignoring
// case.
func findCounter(name string) (*counterInfo, bool) {
	for i := range tcpCounters {
		if ci := &tcpCounters[i]; strings.EqualFold(name, ci.name) || strings.EqualFold(name, ci.key) {
			return ci, true
		}
	}
	return nil, false
}

// counterMeaning returns what a rise of the named counter usually means, in
// plain words, or "" for a counter rstwatch does not know. name is as
// findCounter takes it.
func counterMeaning(name string) string {
	if ci, ok := findCounter(name); ok {
		return ci.meaning
	}
	return ""
}

// readCounters reads the counters of tcpCounters that the kernel reports
// from p's /proc/net/snmp and /proc/net/netstat (those of the network
// namespace p's net directory belongs to; /proc/net follows the process's
// main thread), keyed as proc.Counters keys them ("Tcp.AttemptFails").
// Counters the kernel does not have are absent, not an error.
func readCounters(p proc.FS) (proc.Counters, error) {
	c, err := readCountersFrom(p.Counters)
	if err == nil && len(c) == 0 {
		err = fmt.Errorf("no TCP counters in %s or %s", p.Path("net", "snmp"), p.Path("net", "netstat"))
	}
	return c, err
}

// readCountersFrom keeps the counters rstwatch reports from what read
// returns (all of /proc/net/snmp and netstat, of some namespace).
func readCountersFrom(read func() (proc.Counters, error)) (proc.Counters, error) {
	all, err := read()
	if err != nil {
		return nil, err
	}
	c := make(proc.Counters, len(tcpCounters))
	for i := range tcpCounters {
		if v, ok := all[tcpCounters[i].key]; ok {
			c[tcpCounters[i].key] = v
		}
	}
	if len(c) == 0 {
		return nil, fmt.Errorf("no TCP counters found")
	}
	return c, nil
}

// counterRow is one counter over one interval.
type counterRow struct {
	info    *counterInfo
	total   uint64        // the value at the end of the interval
	delta   uint64        // the change over the interval
	rate    float64       // delta per second
	elapsed time.Duration // the interval's length
}

// counterRows returns a row for each counter present in both prev and cur,
// in display order. A counter that went backwards (only when a namespace
// was recreated) counts as reset to zero, so its delta is its new value.
func counterRows(dst []counterRow, prev, cur proc.Counters, elapsed time.Duration) []counterRow {
	for i := range tcpCounters {
		ci := &tcpCounters[i]
		v, ok := cur[ci.key]
		p, okp := prev[ci.key]
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
		dst = append(dst, counterRow{info: ci, total: v, delta: d, rate: rate, elapsed: elapsed})
	}
	return dst
}

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "show the kernel's TCP failure counters as rates, and alert on them",
		UsageText: "rstwatch stats [--interval D] [-c N] [--json] [--alert EXPR]...",
		Description: `Reads the kernel's TCP counters (/proc/net/snmp "Tcp:" and /proc/net/netstat
"TcpExt:") of this network namespace every interval and prints, for each, the
total, the change over the interval and the rate per second:

` + wrapList(counterNames(), "   ", 77) + `

(those this kernel has). On a terminal the table is redrawn in place; otherwise
one block is printed per interval. No privilege is needed.

--alert EXPR (repeatable) is NAME OP VALUE[/s|/m]: OP is > >= < <= ==; VALUE
with /s or /m is a rate per second or per minute, without a unit the change
over one interval. NAME is a counter above, in any case, with or without its
Tcp. or TcpExt. prefix. While a rule holds an ALERT line says what, how much,
since when and what it usually means (on stderr with --json), and rstwatch
exits with status 3 at the end; 0 if no rule fired.

Examples:
   rstwatch stats                                   rates every second until Ctrl-C
   rstwatch stats --interval 10s -c 6               one minute, six blocks
   rstwatch stats --json -c 1                       one JSON object after one second
   rstwatch stats --alert 'AttemptFails>2/s' --alert 'ListenOverflows>0'
   rstwatch stats -c 60 --alert 'ActiveOpens<1/m' || echo "no new connections"`,
		Flags: append([]cli.Flag{
			durationFlag(flagInterval, time.Second, "compute rates over duration `D`"),
			numericFlag(),
			&cli.IntFlag{Name: flagCount, Aliases: []string{"c"}, Usage: "stop after `N` intervals (0: until Ctrl-C)"},
			&cli.BoolFlag{Name: flagJSON, Usage: "print one JSON object per interval per line, nothing else on stdout"},
			&cli.StringSliceFlag{Name: flagAlert, Usage: "alert while `EXPR` holds, e.g. 'AttemptFails>2/s' (repeatable)"},
		}, namespaceFlags()...),
		Action: runStats,
	}
}

// wrapList joins words with ", " into lines of at most width bytes (unless
// a word is longer), each starting with indent, without a final newline.
func wrapList(words []string, indent string, width int) string {
	var b strings.Builder
	b.WriteString(indent)
	line := len(indent)
	for i, w := range words {
		if i < len(words)-1 {
			w += ","
		}
		if i > 0 {
			if line+1+len(w) > width {
				b.WriteString("\n" + indent)
				line = len(indent)
			} else {
				b.WriteByte(' ')
				line++
			}
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}

// minInterval keeps rates meaningful and /proc reads cheap.
const minInterval = 10 * time.Millisecond

func runStats(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usagef("unexpected argument %q (alert rules go in --%s)", c.Args().First(), flagAlert)
	}
	interval := durationOf(c, flagInterval)
	if interval < minInterval {
		return usagef("invalid --%s %v: want at least %v", flagInterval, interval, minInterval)
	}
	if c.Int(flagCount) < 0 {
		return usagef("invalid --%s %d: want 0 or more", flagCount, c.Int(flagCount))
	}
	rules, err := parseAlerts(c.StringSlice(flagAlert))
	if err != nil {
		return err
	}
	fs, err := proc.NewFS("")
	if err != nil {
		return err
	}
	target, err := resolveNamespace(c, fs)
	if err != nil {
		return err
	}
	read := func() (proc.Counters, error) { return readCountersFrom(target.Counters(fs)) }
	first, err := read()
	if err != nil {
		return err
	}
	// Reading counters needs no privilege, except entering a namespace
	// known only by its path, which stats does at every interval.
	if err := caps.Drop(statsCapabilities(target)...); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "could not drop capabilities: %v\n", err) // not fatal
	}
	for i := range rules {
		if _, ok := first[rules[i].counter.key]; !ok {
			return usagef("invalid --%s %q: this kernel does not report %s", flagAlert, rules[i].text, rules[i].counter.key)
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	s := &statsRun{
		out:    c.App.Writer,
		errOut: c.App.ErrWriter,
		json:   c.Bool(flagJSON),
		count:  c.Int(flagCount),
		rules:  rules,
		read:   read,
		ticks:  tick.C,
	}
	s.redraw = !s.json && isTerminal(c.App.Writer)
	return s.run(c.Context, first, time.Now())
}

// statsCapabilities are the capabilities stats keeps once it has read the
// counters a first time: CAP_SYS_ADMIN when each read enters the
// namespace, else none.
func statsCapabilities(t *namespaces.Target) []caps.Capability {
	if t != nil && t.PID == 0 {
		return []caps.Capability{caps.SysAdmin}
	}
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTTY(f)
}

// statsRun is one run of the stats command.
type statsRun struct {
	out, errOut io.Writer
	json        bool
	redraw      bool // stdout is a terminal: clear it before each block
	count       int  // intervals to print; 0: until ctx ends
	rules       []alertRule
	read        func() (proc.Counters, error)
	ticks       <-chan time.Time
}

// clearScreen moves the cursor home and clears the terminal (ECMA-48 CUP, ED).
const clearScreen = "\x1b[H\x1b[2J"

// run prints one block or JSON object per tick until ctx ends or count
// intervals have passed. prev was read at start. It returns alertError{}
// if any rule fired.
func (s *statsRun) run(ctx context.Context, prev proc.Counters, start time.Time) error {
	states := make([]alertState, len(s.rules))
	for i := range s.rules {
		states[i].rule = &s.rules[i]
	}
	var (
		rows   []counterRow
		events []alertEvent
		buf    []byte
		ebuf   []byte
		last   = start
		n      int
	)
	for s.count == 0 || n < s.count {
		var now time.Time
		select {
		case <-ctx.Done():
			return s.finish(states, n)
		case now = <-s.ticks:
		}
		cur, err := s.read()
		if err != nil {
			return err
		}
		n++
		elapsed := now.Sub(last)
		rows = counterRows(rows[:0], prev, cur, elapsed)
		events = evalAlerts(events[:0], states, rows, now)
		buf = buf[:0]
		if s.json {
			buf = appendStatsJSON(buf, now, elapsed, rows, events)
			buf = append(buf, '\n')
			ebuf = ebuf[:0]
			for i := range events {
				ebuf = appendAlertLine(ebuf, &events[i])
				ebuf = append(ebuf, '\n')
			}
			if len(ebuf) > 0 {
				if _, err := s.errOut.Write(ebuf); err != nil {
					return fmt.Errorf("write alerts: %w", err)
				}
			}
		} else {
			if s.redraw {
				buf = append(buf, clearScreen...)
			} else if n > 1 {
				buf = append(buf, '\n')
			}
			buf = appendStatsText(buf, now, elapsed, rows)
			for i := range events {
				buf = appendAlertLine(buf, &events[i])
				buf = append(buf, '\n')
			}
		}
		// One write per interval, so a block appears whole.
		if _, err := s.out.Write(buf); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		prev, last = cur, now
	}
	return s.finish(states, n)
}

// finish sums up the alerts on stderr and returns alertError{} if any rule
// fired.
func (s *statsRun) finish(states []alertState, intervals int) error {
	var fired []string
	for i := range states {
		if states[i].fired > 0 {
			fired = append(fired, fmt.Sprintf("%s (in %d of %d intervals)", states[i].rule.text, states[i].fired, intervals))
		}
	}
	if len(fired) == 0 {
		return nil
	}
	rule := "rule"
	if len(fired) > 1 {
		rule = "rules"
	}
	fmt.Fprintf(s.errOut, "%d alert %s fired: %s\n", len(fired), rule, strings.Join(fired, ", "))
	return alertError{}
}

// evalAlerts evaluates every rule on one interval's rows, ending at now,
// and appends an event for each rule that holds or has just stopped
// holding.
func evalAlerts(dst []alertEvent, states []alertState, rows []counterRow, now time.Time) []alertEvent {
	for i := range states {
		st := &states[i]
		var row counterRow
		found := false
		for _, r := range rows {
			if r.info == st.rule.counter {
				row, found = r, true
				break
			}
		}
		if !found {
			continue
		}
		switch {
		case st.rule.holds(row):
			if st.since.IsZero() {
				st.since = now.Add(-row.elapsed)
			}
			st.fired++
			dst = append(dst, alertEvent{rule: st.rule, row: row, since: st.since})
		case !st.since.IsZero():
			dst = append(dst, alertEvent{rule: st.rule, row: row, since: st.since, cleared: true, end: now.Add(-row.elapsed)})
			st.since = time.Time{}
		}
	}
	return dst
}

// appendStatsText appends one block: a title line with the time and the
// interval, then an aligned table.
//
//	15:04:05.000  interval 1s
//	COUNTER       TOTAL  DELTA  RATE/s
//	AttemptFails     12      3     3.0
func appendStatsText(b []byte, now time.Time, elapsed time.Duration, rows []counterRow) []byte {
	b = now.AppendFormat(b, "15:04:05.000")
	b = append(b, "  interval "...)
	b = append(b, elapsed.Round(time.Millisecond).String()...)
	b = append(b, '\n')
	const (
		hName, hTotal, hDelta, hRate = "COUNTER", "TOTAL", "DELTA", "RATE/s"
	)
	wName, wTotal, wDelta, wRate := len(hName), len(hTotal), len(hDelta), len(hRate)
	var num [32]byte
	for _, r := range rows {
		wName = max(wName, len(r.info.name))
		wTotal = max(wTotal, len(strconv.AppendUint(num[:0], r.total, 10)))
		wDelta = max(wDelta, len(strconv.AppendUint(num[:0], r.delta, 10)))
		wRate = max(wRate, len(strconv.AppendFloat(num[:0], r.rate, 'f', 1, 64)))
	}
	b = appendCell(b, hName, wName, false)
	b = appendCell(b, hTotal, wTotal, true)
	b = appendCell(b, hDelta, wDelta, true)
	b = appendCell(b, hRate, wRate, true)
	b = append(b, '\n')
	for _, r := range rows {
		b = appendCell(b, r.info.name, wName, false)
		b = appendCell(b, string(strconv.AppendUint(num[:0], r.total, 10)), wTotal, true)
		b = appendCell(b, string(strconv.AppendUint(num[:0], r.delta, 10)), wDelta, true)
		b = appendCell(b, string(strconv.AppendFloat(num[:0], r.rate, 'f', 1, 64)), wRate, true)
		b = append(b, '\n')
	}
	return b
}

// appendCell appends s padded to width w, right-aligned if right, with two
// spaces before every cell but the first in a line. s must be printable
// ASCII or already escaped (appendSafe).
func appendCell(b []byte, s string, w int, right bool) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, "  "...)
	}
	pad := w - len(s)
	if right {
		b = appendSpaces(b, pad)
		return append(b, s...)
	}
	b = append(b, s...)
	return appendSpaces(b, pad)
}

func appendSpaces(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, ' ')
	}
	return b
}

// appendStatsJSON appends one interval as a JSON object without the
// newline:
//
//	{"time":"2026-11-21T17:40:21.761841090Z","interval_s":1,"counters":{"AttemptFails":{"total":12,"delta":3,"rate":3},...},"alerts":[]}
//
// rate is per second, rounded to 3 decimals. Each alert is
// {"rule","counter","delta","rate","since","meaning"}; "cleared":true marks
// a rule that stopped holding in this interval.
func appendStatsJSON(b []byte, now time.Time, elapsed time.Duration, rows []counterRow, events []alertEvent) []byte {
	b = append(b, `{"time":"`...)
	b = now.UTC().AppendFormat(b, jsonTime)
	b = append(b, `","interval_s":`...)
	b = appendRounded(b, elapsed.Seconds())
	b = append(b, `,"counters":{`...)
	for i, r := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, r.info.name)
		b = append(b, `:{"total":`...)
		b = strconv.AppendUint(b, r.total, 10)
		b = append(b, `,"delta":`...)
		b = strconv.AppendUint(b, r.delta, 10)
		b = append(b, `,"rate":`...)
		b = appendRounded(b, r.rate)
		b = append(b, '}')
	}
	b = append(b, `},"alerts":[`...)
	for i := range events {
		ev := &events[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"rule":`...)
		b = appendJSONString(b, ev.rule.text)
		b = append(b, `,"counter":`...)
		b = appendJSONString(b, ev.row.info.name)
		b = append(b, `,"delta":`...)
		b = strconv.AppendUint(b, ev.row.delta, 10)
		b = append(b, `,"rate":`...)
		b = appendRounded(b, ev.row.rate)
		b = append(b, `,"since":"`...)
		b = ev.since.UTC().AppendFormat(b, jsonTime)
		b = append(b, `","meaning":`...)
		b = appendJSONString(b, ev.row.info.meaning)
		if ev.cleared {
			b = append(b, `,"cleared":true`...)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendRounded appends f rounded to 3 decimals as a JSON number.
func appendRounded(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, '0')
	}
	return strconv.AppendFloat(b, math.Round(f*1000)/1000, 'f', -1, 64)
}
