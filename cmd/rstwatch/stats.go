package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/caps"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/stats"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
	"github.com/rstwatch/rstwatch/proc/namespaces"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "show the kernel's TCP failure counters as rates, and alert on them",
		UsageText: "rstwatch stats [--interval D] [-c N] [--json] [--alert EXPR]...",
		Description: `Reads the kernel's TCP counters (/proc/net/snmp "Tcp:" and /proc/net/netstat
"TcpExt:") of this network namespace every interval and prints, for each, the
total, the change over the interval and the rate per second:

` + wrapList(counters.Names(), "   ", 77) + `

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
	read := func() (proc.Counters, error) { return counters.ReadFrom(target.Counters(fs)) }
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
		if _, ok := first[rules[i].Counter.Key]; !ok {
			return usagef("invalid --%s %q: this kernel does not report %s", flagAlert, rules[i].Text, rules[i].Counter.Key)
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	s := &stats.Run{
		Out:    c.App.Writer,
		ErrOut: c.App.ErrWriter,
		JSON:   c.Bool(flagJSON),
		Count:  c.Int(flagCount),
		Rules:  rules,
		Read:   read,
		Ticks:  tick.C,
		Redraw: !c.Bool(flagJSON) && isTerminal(c.App.Writer),
	}
	fired, err := s.Run(c.Context, first, time.Now())
	if err == nil && fired {
		err = alertError{}
	}
	return err
}

// parseAlerts parses every --alert expression. Its errors are usage errors
// that quote the expression.
func parseAlerts(exprs []string) ([]counters.Rule, error) {
	rules := make([]counters.Rule, 0, len(exprs))
	for _, e := range exprs {
		r, err := counters.ParseRule(e)
		if err != nil {
			return nil, usagef("invalid --%s %q: %v", flagAlert, e, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
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
