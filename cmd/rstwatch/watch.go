package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/render"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
	"github.com/rstwatch/rstwatch/sniff/pipeline"
)

func watchCommand() *cli.Command {
	return &cli.Command{
		Name:      "watch",
		Usage:     "print every TCP reset on every interface as it happens (the default command)",
		UsageText: "rstwatch [watch] [-i NAME]... [--port N]... [--host ADDR]... [-c N] [--duration D] [--json] [-w FILE [--print]]",
		Description: `Opens one capture on all interfaces at once (loopback included, IPv4 and IPv6;
loopback's duplicate copy is dropped in the kernel, forwarded copies in user space)
and prints one line per TCP reset:

   15:13:13.476095 lo local 127.0.0.1.7211 > 127.0.0.1.41838: Flags [R.], seq 0, ack 2154306035, win 0, length 0

direction is "in" (from another host), "out" (to another host) or "local" (both
ends on this host). --port and --host are compiled into the kernel filter.

-w FILE writes the resets to FILE and, as tcpdump's -w, prints no lines: the
file keeps up with a storm. --print prints the lines (or --json) as well. The
closing summary goes to stderr either way.

Examples:
   rstwatch                              every reset on every interface
   rstwatch watch -i lo --port 7211      resets on loopback to or from port 7211
   rstwatch watch --json -c 100          the next 100 resets as JSON lines
   rstwatch watch --host 2001:db8::1 --duration 1m
   rstwatch watch -w resets.pcapng       keep the evidence (Wireshark opens it), print nothing
   rstwatch watch -w resets.pcapng --print   keep it and print the lines too
   rstwatch watch -r capture.pcap        the resets in a file from tcpdump, Wireshark, ...

Needs CAP_NET_RAW (run as root, or setcap cap_net_raw+ep rstwatch).`,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: flagJSON, Usage: "print one JSON object per reset per line, nothing else on stdout"},
			&cli.BoolFlag{Name: flagPrint, Usage: "with -w, print the lines (or --json) too; -w alone prints none, as tcpdump's -w"},
			&cli.IntFlag{Name: flagCount, Aliases: []string{"c"}, Usage: "stop after `N` events: resets, and failed connections without one (0: no limit)"},
			durationFlag(flagDuration, 0, "stop after duration `D` (e.g. 30s, 5m; 0: no limit)"),
		}, sessionFlags()...),
		Action: runWatch,
	}
}

// sessionFlags are the flags of the commands that capture (watch,
// diagnose): what to capture, where to read or write it, attribution and
// metrics. openSession reads them.
func sessionFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.BoolFlag{Name: flagAllNetns, Usage: "watch every network namespace on the host (named ones, containers', new ones as they appear); needs CAP_SYS_ADMIN"},
		&cli.StringSliceFlag{Name: flagInterface, Aliases: []string{"i"}, Usage: "capture on interface `NAME` (repeatable; default: all, including ones added later)"},
		portsFlag("only resets to or from TCP port `N`, a number or a service name (http, https, ssh, ...; repeatable)"),
		numericFlag(),
		&cli.StringSliceFlag{Name: flagHost, Usage: "only resets to or from `ADDR`, IPv4 or IPv6 (repeatable)"},
		&cli.StringFlag{Name: flagWrite, Aliases: []string{"w"}, Usage: "write every reset to `FILE` (pcapng; \"-\" is stdout); watch then prints no lines unless --print"},
		&cli.BoolFlag{Name: flagPcap, Usage: "with -w, write classic pcap (LINKTYPE_LINUX_SLL2, nanoseconds) instead of pcapng"},
		&cli.StringFlag{Name: flagRead, Aliases: []string{"r"}, Usage: "read resets from pcap or pcapng `FILE` instead of capturing (\"-\" is stdin; causes from the packets alone)"},
		&cli.BoolFlag{Name: flagNoExplain, Usage: "do not tie resets to sockets and processes (no sock_diag, no /proc scans; causes from the packets alone)"},
		&cli.IntFlag{Name: flagExplainBudget, Value: explain.DefaultBudget, Usage: "tie at most `N` resets and SYNs a second to sockets (a lookup that finds no socket counts as ten); in a storm the rest are explained from the packet alone (-1: no limit)"},
		metricsFlag(),
	}, namespaceFlags()...)
}

// captureFlags turns the flags shared by capturing commands into a sniff
// configuration, reporting bad values as usage errors.
func captureFlags(c *cli.Context) (*sniff.Config, error) {
	cfg := &sniff.Config{Interfaces: c.StringSlice(flagInterface)}
	ports := portsOf(c)
	if len(ports) > filter.MaxPorts {
		return nil, usagef("at most %d --%s values", filter.MaxPorts, flagPort)
	}
	for _, p := range ports {
		if p < 1 || p > 65535 {
			return nil, usagef("invalid --%s %d: want 1-65535", flagPort, p)
		}
		cfg.Filter.Ports = append(cfg.Filter.Ports, uint16(p))
	}
	hosts := c.StringSlice(flagHost)
	if len(hosts) > filter.MaxHosts {
		return nil, usagef("at most %d --%s values", filter.MaxHosts, flagHost)
	}
	for _, h := range hosts {
		a, err := netip.ParseAddr(strings.TrimSpace(h))
		if err != nil || a.Zone() != "" {
			return nil, usagef("invalid --%s %q: want an IPv4 or IPv6 address", flagHost, h)
		}
		cfg.Filter.Hosts = append(cfg.Filter.Hosts, a.Unmap())
	}
	if c.Int(flagCount) < 0 {
		return nil, usagef("invalid --%s %d: want 0 or more", flagCount, c.Int(flagCount))
	}
	if durationOf(c, flagDuration) < 0 {
		return nil, usagef("invalid --%s %v: want 0 or more", flagDuration, durationOf(c, flagDuration))
	}
	if c.Args().Len() > 0 {
		return nil, usagef("unexpected argument %q (filters are flags: --port, --host, -i)", c.Args().First())
	}
	return cfg, nil
}

// listeningLine is what rstwatch says on stderr once the capture is armed.
func listeningLine(cfg *sniff.Config, ifaces []sniff.Interface) string {
	names := make([]string, len(ifaces))
	for i, ifi := range ifaces {
		names[i] = safe.Text(ifi.Name)
	}
	if len(cfg.Interfaces) == 0 {
		return fmt.Sprintf("listening on all interfaces (%s), capturing TCP resets", strings.Join(names, ", "))
	}
	return fmt.Sprintf("listening on %s, capturing TCP resets", strings.Join(names, ", "))
}

// printFlags checks the output flags of watch and reports whether it
// prints lines: always without -w; with -w (as tcpdump's -w) only when
// --print asks for them.
func printFlags(c *cli.Context) (bool, error) {
	write := c.String(flagWrite)
	switch {
	case write == "":
		return true, nil
	case c.Bool(flagPrint) && write == pipeline.Stdio:
		return false, usagef("--%s cannot be used with -w -: stdout carries the capture file", flagPrint)
	case c.Bool(flagJSON) && !c.Bool(flagPrint):
		// Silently printing nothing would surprise more than an error.
		return false, usagef("-w writes only the file, as tcpdump's -w does: add --%s to print JSON lines too", flagPrint)
	}
	return c.Bool(flagPrint), nil
}

func runWatch(c *cli.Context) error {
	printLines, err := printFlags(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	s, err := openSession(ctx, c)
	if err != nil {
		return err
	}
	defer s.close()
	stopAfter(durationOf(c, flagDuration), cancel)

	var out []pipeline.Sink
	if printLines {
		out = append(out, render.NewLineSink(s.stdout, c.Bool(flagJSON)))
	}
	n, err := s.run(ctx, c.Int(flagCount), out...)
	// Whatever happened, keep what was already captured: the pipeline
	// flushed the lines; close the file, then report.
	if ferr := s.finish(); err == nil {
		err = ferr
	}
	s.reportCapture(n)
	return err
}
