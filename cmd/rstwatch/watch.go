package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

func watchCommand() *cli.Command {
	return &cli.Command{
		Name:      "watch",
		Usage:     "print every TCP reset on every interface as it happens (the default command)",
		UsageText: "rstwatch [watch] [-i NAME]... [--port N]... [--host ADDR]... [-c N] [--duration D] [--json]",
		Description: `Opens one capture on all interfaces at once (loopback included, IPv4 and IPv6;
loopback's duplicate copy is dropped in the kernel, forwarded copies in user space)
and prints one line per TCP reset:

   15:13:13.476095 lo local 127.0.0.1.7211 > 127.0.0.1.41838: Flags [R.], seq 0, ack 2154306035, win 0, length 0

direction is "in" (from another host), "out" (to another host) or "local" (both
ends on this host). --port and --host are compiled into the kernel filter.

Examples:
   rstwatch                              every reset on every interface
   rstwatch watch -i lo --port 7211      resets on loopback to or from port 7211
   rstwatch watch --json -c 100          the next 100 resets as JSON lines
   rstwatch watch --host 2001:db8::1 --duration 1m
   rstwatch watch -w resets.pcapng       print and keep the evidence (Wireshark opens it)
   rstwatch watch -r capture.pcap        the resets in a file from tcpdump, Wireshark, ...

Needs CAP_NET_RAW (run as root, or setcap cap_net_raw+ep rstwatch).`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: flagInterface, Aliases: []string{"i"}, Usage: "capture on interface `NAME` (repeatable; default: all, including ones added later)"},
			&cli.BoolFlag{Name: flagJSON, Usage: "print one JSON object per reset per line, nothing else on stdout"},
			&cli.IntFlag{Name: flagCount, Aliases: []string{"c"}, Usage: "stop after `N` resets (0: no limit)"},
			&cli.DurationFlag{Name: flagDuration, Usage: "stop after duration `D` (e.g. 30s, 5m; 0: no limit)"},
			&cli.IntSliceFlag{Name: flagPort, Usage: "only resets to or from TCP port `N` (repeatable)"},
			&cli.StringSliceFlag{Name: flagHost, Usage: "only resets to or from `ADDR`, IPv4 or IPv6 (repeatable)"},
			&cli.StringFlag{Name: flagWrite, Aliases: []string{"w"}, Usage: "also write every reset to `FILE` (pcapng; \"-\" is stdout, which then carries only the file)"},
			&cli.BoolFlag{Name: flagPcap, Usage: "with -w, write classic pcap (LINKTYPE_LINUX_SLL2, nanoseconds) instead of pcapng"},
			&cli.BoolFlag{Name: flagNoExplain, Usage: "do not tie resets to sockets and processes (no sock_diag, no /proc scans; cause from the packet only)"},
			&cli.StringFlag{Name: flagRead, Aliases: []string{"r"}, Usage: "read resets from pcap or pcapng `FILE` instead of capturing (\"-\" is stdin)"},
		},
		Action: runWatch,
	}
}

// captureFlags turns the flags shared by capturing commands into a sniff
// configuration, reporting bad values as usage errors.
func captureFlags(c *cli.Context) (*sniff.Config, error) {
	cfg := &sniff.Config{Interfaces: c.StringSlice(flagInterface)}
	ports := c.IntSlice(flagPort)
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
	if c.Duration(flagDuration) < 0 {
		return nil, usagef("invalid --%s %v: want 0 or more", flagDuration, c.Duration(flagDuration))
	}
	if c.Args().Len() > 0 {
		return nil, usagef("unexpected argument %q (filters are flags: --port, --host, -i)", c.Args().First())
	}
	return cfg, nil
}

// openCapture opens the capture and turns its failures into the errors a
// user can act on.
func openCapture(cfg *sniff.Config) (*sniff.Sniffer, error) {
	s, err := sniff.Open(cfg)
	var unknown *sniff.UnknownInterfaceError
	switch {
	case err == nil:
		return s, nil
	case errors.As(err, &unknown):
		return nil, usageError{unknown}
	case errors.Is(err, os.ErrPermission):
		return nil, privilegeError(err)
	}
	return nil, fmt.Errorf("open capture: %w", err)
}

// listeningLine is what rstwatch says on stderr once the capture is armed.
func listeningLine(cfg *sniff.Config, ifaces []sniff.Interface) string {
	names := make([]string, len(ifaces))
	for i, ifi := range ifaces {
		names[i] = string(appendSafe(nil, ifi.Name))
	}
	if len(cfg.Interfaces) == 0 {
		return fmt.Sprintf("listening on all interfaces (%s), capturing TCP resets", strings.Join(names, ", "))
	}
	return fmt.Sprintf("listening on %s, capturing TCP resets", strings.Join(names, ", "))
}

// eventSource is a live capture or a capture file.
type eventSource interface {
	Next(*sniff.Event) error
	Buffered() int
}

func runWatch(c *cli.Context) error {
	cfg, err := captureFlags(c)
	if err != nil {
		return err
	}
	if c.Bool(flagPcap) && c.String(flagWrite) == "" {
		return usagef("--%s needs -w FILE", flagPcap)
	}
	ctx := c.Context
	if d := c.Duration(flagDuration); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}

	// Create the capture file first, as tcpdump does: an unwritable path
	// fails before anything is captured or printed.
	stdout := c.App.Writer
	var file *captureFile
	if path := c.String(flagWrite); path != "" {
		if file, err = createCaptureFile(path, c.Bool(flagPcap), stdout); err != nil {
			return err
		}
		defer file.close() // a second close after the explicit one is harmless
		if path == stdio {
			stdout = io.Discard // stdout carries the capture file only
		}
	}

	var (
		src     eventSource
		summary func(n int)
		x       *explain.Explainer // nil offline or when attribution is off
	)
	if path := c.String(flagRead); path != "" {
		if len(cfg.Interfaces) > 0 {
			return usagef("-i selects live interfaces; it cannot be used with -r")
		}
		fr, closer, err := openReadFile(path, cfg.Filter, os.Stdin)
		if err != nil {
			return err
		}
		defer closer.Close()
		src = fr
		summary = func(n int) {
			fmt.Fprintf(c.App.ErrWriter, "%d resets in %s (%d packets read)\n", n, path, fr.Packets)
		}
	} else {
		if !c.Bool(flagNoExplain) {
			x = openExplainer(c.App.ErrWriter)
		}
		if x != nil {
			defer x.Close()
			// Outgoing SYNs let the explainer see a refused client's
			// socket while it exists.
			cfg.Filter.SYN = true
			go x.Run(ctx)
		}
		s, err := openCapture(cfg)
		if err != nil {
			return err
		}
		defer s.Close()
		fmt.Fprintln(c.App.ErrWriter, listeningLine(cfg, s.Interfaces()))
		stop := context.AfterFunc(ctx, func() { _ = s.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
		src = s
		summary = func(n int) { reportCapture(c.App.ErrWriter, s, n) }
	}

	out := bufio.NewWriterSize(stdout, 64<<10)
	n, err := watchLoop(ctx, src, out, loopConfig{
		explainer: x, offline: c.String(flagRead) != "", file: file,
		json: c.Bool(flagJSON), limit: c.Int(flagCount),
	})
	// Whatever happened, keep what was already captured: flush the lines
	// and the file, then report.
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write output: %w", ferr)
	}
	if file != nil {
		if ferr := file.close(); err == nil {
			err = ferr
		}
	}
	summary(n)
	return err
}

// watchLoop prints (and writes to file, if any) resets until ctx ends, the
// source is exhausted or limit resets were printed, and returns how many it
// printed.
// loopConfig is what watchLoop does with each segment.
type loopConfig struct {
	explainer *explain.Explainer // nil: causes from the packet alone
	offline   bool               // the source is a capture file
	file      *captureFile       // -w, or nil
	json      bool
	limit     int // resets to print; 0 is no limit
}

func watchLoop(ctx context.Context, src eventSource, out *bufio.Writer, lc loopConfig) (int, error) {
	x, file, limit := lc.explainer, lc.file, lc.limit
	var (
		ev  sniff.Event
		v   explain.Verdict
		buf = make([]byte, 0, 1024)
		n   int
	)
	for (limit == 0 || n < limit) && ctx.Err() == nil {
		if err := src.Next(&ev); err != nil {
			switch {
			case errors.Is(err, io.EOF):
				return n, nil
			case ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded):
				return n, nil
			}
			return n, err
		}
		if !ev.Flags.Has(sniff.FlagRST) {
			// A SYN passed for attribution: not printed, but kept in the
			// capture file, marked.
			if x != nil {
				x.Observe(&ev)
			}
			if file != nil {
				if err := file.write(&ev, synComment); err != nil {
					return n, err
				}
			}
			continue
		}
		n++
		explainReset(x, &ev, &v, lc.offline)
		if lc.json {
			buf = appendJSON(buf[:0], &ev, &v)
		} else {
			buf = appendText(buf[:0], &ev, &v)
		}
		buf = append(buf, '\n')
		if _, err := out.Write(buf); err != nil {
			return n, fmt.Errorf("write output: %w", err)
		}
		if file != nil {
			if err := file.write(&ev, verdictComment(&v)); err != nil {
				return n, err
			}
		}
		// Flush before Next may block, so lines appear as they happen
		// while a storm is still written in large chunks.
		if src.Buffered() == 0 {
			if err := out.Flush(); err != nil {
				return n, fmt.Errorf("write output: %w", err)
			}
			if file != nil {
				if err := file.flush(); err != nil {
					return n, err
				}
			}
		}
	}
	return n, nil
}

// reportCapture prints the closing summary, as tcpdump does.
func reportCapture(w io.Writer, s *sniff.Sniffer, n int) {
	st, err := s.Stats()
	if err != nil {
		fmt.Fprintf(w, "%d resets captured (kernel statistics unavailable: %v)\n", n, err)
		return
	}
	fmt.Fprintf(w, "%d resets captured, %d dropped by kernel\n", n, st.Drops)
	fmt.Fprintf(w, "%d packets received by filter\n", st.Packets)
}

// synComment marks the SYNs a capture file holds only for attribution.
const synComment = "rstwatch: SYN kept for attribution"

// openExplainer starts attribution; when it cannot (no sock_diag, no /proc),
// watch goes on with causes from the packets alone and says so once.
func openExplainer(stderr io.Writer) *explain.Explainer {
	x, err := explain.Open(nil)
	if err != nil {
		fmt.Fprintf(stderr, "attribution unavailable, causes come from the packets alone: %v\n", err)
		return nil
	}
	return x
}

// explainReset fills v for a reset: from the kernel's state when x is set,
// else from the packet alone (offline: read from a capture file).
func explainReset(x *explain.Explainer, e *sniff.Event, v *explain.Verdict, offline bool) {
	if x != nil {
		x.Explain(e, v)
		return
	}
	*v = explain.Verdict{Cause: explain.WireCause(&e.Segment), Offline: offline}
}

// verdictComment is the pcapng packet comment that carries the attribution.
func verdictComment(v *explain.Verdict) string {
	c := "rstwatch: cause=" + v.Cause.String()
	if p := &v.Sender.Process; p.Owned {
		c += " sender=" + p.Comm + "/" + strconv.Itoa(p.PID)
	}
	if p := &v.Target.Process; p.Owned {
		c += " target=" + p.Comm + "/" + strconv.Itoa(p.PID)
	}
	return c
}
