package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sniffer is the program under test, run in a namespace with
// `ip netns exec` (which execs it: the process is the sniffer itself, so
// wait4's rusage is the sniffer's). Its stdout goes to /dev/null; its
// stderr is kept for the closing counts.
type sniffer struct {
	cmd    *exec.Cmd
	ready  chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	stderr bytes.Buffer
	usage  *syscall.Rusage

	rssMu   sync.Mutex
	rss     []rssSample
	stopRSS chan struct{}
}

type rssSample struct {
	at  time.Time
	kib uint64
}

// startSniffer starts args in ns and waits until it says it is listening
// ("listening on", as rstwatch and tcpdump both print on stderr).
func startSniffer(ns namespace, args []string, timeout time.Duration) (*sniffer, error) {
	s := &sniffer{ready: make(chan struct{}), done: make(chan struct{}), stopRSS: make(chan struct{})}
	s.cmd = exec.Command("ip", append([]string{"netns", "exec", ns.name}, args...)...)
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	s.cmd.Stdout = devnull
	pipe, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sniffer: %w", err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(pipe)
		once := sync.Once{}
		for sc.Scan() {
			s.mu.Lock()
			s.stderr.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if strings.Contains(sc.Text(), "listening on") {
				once.Do(func() { close(s.ready) })
			}
		}
	}()
	select {
	case <-s.ready:
	case <-s.done:
		_ = s.cmd.Wait()
		return nil, fmt.Errorf("sniffer %q exited before listening: %s", strings.Join(args, " "), strings.TrimSpace(s.errText()))
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		return nil, fmt.Errorf("sniffer %q did not say \"listening on\" within %v: %s", strings.Join(args, " "), timeout, strings.TrimSpace(s.errText()))
	}
	go s.sampleRSS()
	return s, nil
}

func (s *sniffer) errText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// sampleRSS records the sniffer's resident set every 200 ms.
func (s *sniffer) sampleRSS() {
	path := "/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/status"
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.stopRSS:
			return
		case now := <-tick.C:
			b, err := os.ReadFile(path)
			if err != nil {
				return
			}
			if kib, ok := statusField(b, "VmRSS:"); ok {
				s.rssMu.Lock()
				s.rss = append(s.rss, rssSample{now, kib})
				s.rssMu.Unlock()
			}
		}
	}
}

// rssBetween returns the largest RSS sample taken in [from, to).
func (s *sniffer) rssBetween(from, to time.Time) uint64 {
	s.rssMu.Lock()
	defer s.rssMu.Unlock()
	var m uint64
	for _, r := range s.rss {
		if !r.at.Before(from) && r.at.Before(to) {
			m = max(m, r.kib)
		}
	}
	return m
}

// stop sends SIGINT, waits for the sniffer to print its counts and exit,
// and keeps its rusage. It kills a sniffer that takes over 20 s.
func (s *sniffer) stop() error {
	close(s.stopRSS)
	_ = s.cmd.Process.Signal(os.Interrupt)
	exited := make(chan error, 1)
	go func() { <-s.done; exited <- s.cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		err = <-exited
		err = fmt.Errorf("sniffer did not exit within 20s of SIGINT (killed): %v", err)
	}
	if ps := s.cmd.ProcessState; ps != nil {
		s.usage, _ = ps.SysUsage().(*syscall.Rusage)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 0 {
		err = nil
	}
	return err
}

// counts are the sniffer's own closing report.
type counts struct {
	Captured, Dropped, Filter int64 // -1 when not reported
}

var (
	reCaptured = regexp.MustCompile(`(?m)^(\d+) (?:resets|packets) captured`)
	reDropped  = regexp.MustCompile(`(?m)(\d+) (?:packets )?dropped by kernel`)
	reFilter   = regexp.MustCompile(`(?m)^(\d+) packets received by filter`)
)

// parseCounts reads rstwatch's "N resets captured, M dropped by kernel" /
// "N packets received by filter" and tcpdump's "N packets captured",
// "N packets received by filter", "N packets dropped by kernel".
func parseCounts(stderr string) counts {
	get := func(re *regexp.Regexp) int64 {
		m := re.FindAllStringSubmatch(stderr, -1)
		if m == nil {
			return -1
		}
		n, _ := strconv.ParseInt(m[len(m)-1][1], 10, 64)
		return n
	}
	return counts{Captured: get(reCaptured), Dropped: get(reDropped), Filter: get(reFilter)}
}

// statusField returns a "Name: N kB" field of /proc/PID/status.
func statusField(b []byte, name string) (uint64, bool) {
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, err := strconv.ParseUint(f[0], 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}
