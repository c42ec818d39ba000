package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/proc/netns"
)

// Flag names.
const (
	flagMode     = "mode"
	flagRate     = "rate"
	flagCount    = "count"
	flagDuration = "duration"
	flagPrefix   = "prefix"
	flagLinger   = "linger"
	flagBytes    = "bytes"
	flagReps     = "reps"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp(os.Stdout).RunContext(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "rststorm: %v\n", err)
		os.Exit(1)
	}
}

func newApp(stdout io.Writer) *cli.App {
	return &cli.App{
		Name:  "rststorm",
		Usage: "benchmark tool: TCP reset storms and bulk transfers in private network namespaces",
		Description: "rststorm creates its own network namespaces (a veth pair with 198.18.0.0/24 and fd52::/64\n" +
			"inside it), runs the sniffer given after -- in the receiving one, and reports one line of\n" +
			"key=value pairs. Nothing leaves the namespaces; they are deleted on exit and on SIGINT.",
		Writer:          stdout,
		HideHelpCommand: true,
		Commands:        []*cli.Command{stormCommand(), bulkCommand()},
		ExitErrHandler:  func(*cli.Context, error) {},
	}
}

func stormCommand() *cli.Command {
	return &cli.Command{
		Name:      "storm",
		Usage:     "send a bounded storm of TCP resets into a namespace and measure the sniffer there",
		UsageText: "rststorm storm [--mode rst|syn] [--rate N] [--count N] [--duration D] [-- SNIFFER ARGS...]",
		Description: `Creates PREFIX-tx and PREFIX-rx joined by a veth pair, starts SNIFFER ARGS inside PREFIX-rx
(stdout to /dev/null) and waits for it to print "listening on" on stderr, then sends the storm
from PREFIX-tx, alternating IPv4 and IPv6, every packet with its own ports and sequence number:

  --mode rst   crafted RST|ACK segments to PREFIX-rx, which has no socket for them
  --mode syn   crafted SYNs to closed ports of PREFIX-rx, whose kernel answers each with a RST

It then waits --linger, sends SIGINT, and prints one line:

  mode rate sent sent_v4 sent_v6 seconds pps   what the generator wrote and how fast
  resets      resets that reached PREFIX-rx's TCP (rst: ΔTcp InSegs) or that it sent (syn: ΔTcp OutRsts)
  captured dropped filter   the sniffer's own closing counts (-1: not printed)
  cpu_user cpu_sys cpu      the sniffer's CPU seconds (wait4 rusage)
  maxrss_kib                its peak RSS (ru_maxrss)
  rss_q1_kib rss_q4_kib     its largest RSS in the first and the last quarter of the storm

With no SNIFFER it only sends.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagMode, Value: "rst", Usage: "`rst` (crafted resets) or syn (SYNs to closed ports)"},
			&cli.IntFlag{Name: flagRate, Usage: "packets a second (`N`); 0 sends as fast as possible"},
			&cli.Uint64Flag{Name: flagCount, Value: 100000, Usage: "stop after `N` packets"},
			&cli.DurationFlag{Name: flagDuration, Value: 10 * time.Second, Usage: "stop after `D` at the latest"},
			&cli.DurationFlag{Name: flagLinger, Value: time.Second, Usage: "wait `D` after the storm before stopping the sniffer"},
			&cli.StringFlag{Name: flagPrefix, Value: "rststorm-" + strconv.Itoa(os.Getpid()), Usage: "namespace name `PREFIX`"},
		},
		Action: runStorm,
	}
}

func runStorm(c *cli.Context) error {
	ctx := c.Context
	count, d := c.Uint64(flagCount), c.Duration(flagDuration)
	if count == 0 || d <= 0 || d > time.Hour {
		return fmt.Errorf("--%s and --%s must be bounded (count > 0, 0 < duration <= 1h)", flagCount, flagDuration)
	}
	cr := &crafter{src4: txAddr4, dst4: rxAddr4, src6: txAddr6, dst6: rxAddr6}
	var counter string
	switch c.String(flagMode) {
	case "rst":
		cr.flags, counter = tcpRST|tcpACK, "InSegs"
	case "syn":
		cr.flags, counter = tcpSYN, "OutRsts"
	default:
		return fmt.Errorf("--%s %q: want rst or syn", flagMode, c.String(flagMode))
	}
	p, err := newPair(c.String(flagPrefix))
	if err != nil {
		return err
	}
	defer p.remove()
	snd, err := newSender(p)
	if err != nil {
		return err
	}
	defer snd.close()

	var sn *sniffer
	if args := c.Args().Slice(); len(args) > 0 {
		if sn, err = startSniffer(p.rx, args, 15*time.Second); err != nil {
			return err
		}
		defer func() {
			if sn.usage == nil {
				_ = sn.stop()
			}
		}()
	}
	before, err := tcpCounters(p.rx)
	if err != nil {
		return err
	}
	start := time.Now()
	res, serr := snd.storm(ctx, cr, count, c.Int(flagRate), d)
	end := time.Now()
	if serr != nil {
		return serr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	linger := c.Duration(flagLinger)
	select {
	case <-time.After(linger):
	case <-ctx.Done():
		return ctx.Err()
	}
	after, err := tcpCounters(p.rx)
	if err != nil {
		return err
	}
	pps := float64(res.Sent) / res.Elapsed.Seconds()
	line := fmt.Sprintf("mode=%s rate=%d sent=%d sent_v4=%d sent_v6=%d seconds=%.3f pps=%.0f resets=%d",
		c.String(flagMode), c.Int(flagRate), res.Sent, res.V4, res.V6, res.Elapsed.Seconds(), pps, after[counter]-before[counter])
	if sn != nil {
		q := end.Sub(start) / 4
		rss1, rss4 := sn.rssBetween(start, start.Add(q)), sn.rssBetween(end.Add(-q), end.Add(linger))
		if err := sn.stop(); err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(sn.errText()))
		}
		ct := parseCounts(sn.errText())
		u := sn.usage
		ut, st := tv(u.Utime), tv(u.Stime)
		line += fmt.Sprintf(" captured=%d dropped=%d filter=%d cpu_user=%.3f cpu_sys=%.3f cpu=%.3f maxrss_kib=%d rss_q1_kib=%d rss_q4_kib=%d",
			ct.Captured, ct.Dropped, ct.Filter, ut, st, ut+st, u.Maxrss, rss1, rss4)
	}
	fmt.Fprintln(c.App.Writer, line)
	return nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func bulkCommand() *cli.Command {
	return &cli.Command{
		Name:      "bulk",
		Usage:     "time a bounded TCP transfer over loopback inside a namespace, with a sniffer running there",
		UsageText: "rststorm bulk [--bytes N] [--reps N] [-- SNIFFER ARGS...]",
		Description: `Creates PREFIX-bulk, starts SNIFFER ARGS in it (if given), then --reps times sends --bytes
over one TCP connection on 127.0.0.1 inside it (after one unmeasured warm-up transfer), and
prints one line:

  bytes reps gbps   the median throughput in Gbit/s, and gbps_all, every repetition
  cpu maxrss_kib    the sniffer's CPU seconds and peak RSS (when a sniffer ran)`,
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: flagBytes, Value: 2 << 30, Usage: "bytes per transfer (`N`, at most 64 GiB)"},
			&cli.IntFlag{Name: flagReps, Value: 3, Usage: "transfers (`N`, 1-50)"},
			&cli.StringFlag{Name: flagPrefix, Value: "rststorm-" + strconv.Itoa(os.Getpid()), Usage: "namespace name `PREFIX`"},
		},
		Action: runBulk,
	}
}

func runBulk(c *cli.Context) error {
	ctx := c.Context
	size, reps := c.Int64(flagBytes), c.Int(flagReps)
	if size <= 0 || size > 64<<30 || reps < 1 || reps > 50 {
		return fmt.Errorf("--%s must be 1..64GiB and --%s 1..50", flagBytes, flagReps)
	}
	ns, err := newNamespace(c.String(flagPrefix) + "-bulk")
	if err != nil {
		return err
	}
	defer ns.remove()
	var sn *sniffer
	if args := c.Args().Slice(); len(args) > 0 {
		if sn, err = startSniffer(ns, args, 15*time.Second); err != nil {
			return err
		}
		defer func() {
			if sn.usage == nil {
				_ = sn.stop()
			}
		}()
	}
	// One unmeasured transfer first: the first one pays for faulting in
	// buffers and growing socket memory.
	if _, err := transfer(ctx, ns, min(size, 256<<20)); err != nil {
		return err
	}
	var rates []float64
	for range reps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d, err := transfer(ctx, ns, size)
		if err != nil {
			return err
		}
		rates = append(rates, float64(size)*8/d.Seconds()/1e9)
	}
	all := make([]string, len(rates))
	for i, r := range rates {
		all[i] = fmt.Sprintf("%.2f", r)
	}
	sorted := append([]float64(nil), rates...)
	sort.Float64s(sorted)
	line := fmt.Sprintf("bytes=%d reps=%d gbps=%.2f gbps_all=%s", size, reps, sorted[len(sorted)/2], strings.Join(all, ","))
	if sn != nil {
		if err := sn.stop(); err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(sn.errText()))
		}
		u := sn.usage
		line += fmt.Sprintf(" cpu=%.3f maxrss_kib=%d", tv(u.Utime)+tv(u.Stime), u.Maxrss)
	}
	fmt.Fprintln(c.App.Writer, line)
	return nil
}

// transfer sends size bytes over a fresh loopback TCP connection in ns and
// returns how long it took, from the first write until the receiver read
// the last byte.
func transfer(ctx context.Context, ns namespace, size int64) (time.Duration, error) {
	var (
		ln   net.Listener
		conn net.Conn
	)
	// Sockets belong to the namespace of the thread that creates them.
	err := netns.Do(ns.path(), func() error {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
		conn, err = net.Dial("tcp", ln.Addr().String())
		return err
	})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return 0, err
	}
	defer ln.Close()
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	peer, err := ln.Accept()
	if err != nil {
		return 0, err
	}
	defer peer.Close()
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<20)
		var n int64
		for n < size {
			m, err := peer.Read(buf)
			n += int64(m)
			if err != nil {
				got <- fmt.Errorf("receive after %d bytes: %w", n, err)
				return
			}
		}
		got <- nil
	}()
	buf := make([]byte, 1<<20)
	start := time.Now()
	for left := size; left > 0; {
		m, err := conn.Write(buf[:min(left, int64(len(buf)))])
		if err != nil {
			return 0, fmt.Errorf("send: %w", err)
		}
		left -= int64(m)
	}
	if err := <-got; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
