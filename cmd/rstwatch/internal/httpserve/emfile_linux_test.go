package httpserve

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeEMFILE runs the server out of file descriptors for real: in a
// child process (the test binary again) whose RLIMIT_NOFILE leaves one
// descriptor free, a client connects with it, so the server's accept fails
// with EMFILE. Once descriptors are freed the client must get its answer,
// and the failure must have been logged once.
func TestServeEMFILE(t *testing.T) {
	if os.Getenv("HTTPSERVE_EMFILE_CHILD") == "1" {
		emfileChild(t)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestServeEMFILE$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "HTTPSERVE_EMFILE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestServeEMFILE") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "emfile_linux_test.go") {
			t.Log(strings.TrimSpace(l))
		}
	}
}

func emfileChild(t *testing.T) {
	ln := listen(t)
	var log syncBuffer
	stop := Serve(context.Background(), ln, testHandler("x 1\n"), &log)
	defer stop()

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatalf("failed to get RLIMIT_NOFILE: %v", err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("failed to list fds: %v", err)
	}
	lim := syscall.Rlimit{Cur: uint64(len(fds) + 16), Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("failed to set RLIMIT_NOFILE: %v", err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	// Take every descriptor left, then give one back for the client.
	var filler []*os.File
	defer func() {
		for _, f := range filler {
			f.Close()
		}
	}()
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			break
		}
		if err != nil {
			t.Fatalf("failed to open %s: %v", os.DevNull, err)
		}
		filler = append(filler, f)
		if len(filler) > 64 {
			t.Fatalf("no EMFILE after %d opens with RLIMIT_NOFILE %d", len(filler), lim.Cur)
		}
	}
	filler[len(filler)-1].Close()
	filler = filler[:len(filler)-1]
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("failed to dial with one descriptor left: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /metrics HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatalf("failed to send: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // accept fails and is retried
	for _, f := range filler {
		f.Close()
	}
	filler = nil
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp := make([]byte, 0, 512)
	for {
		var b [512]byte
		n, err := c.Read(b[:])
		resp = append(resp, b[:n]...)
		if err != nil {
			break
		}
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(string(resp), "\r\n\r\nx 1\n") {
		t.Fatalf("response after descriptors were freed: %q (log %q)", resp, log.String())
	}
	if !strings.Contains(log.String(), "too many open files") {
		t.Fatalf("accept did not fail with EMFILE (log %q)", log.String())
	}
	t.Logf("answered %v after descriptors were freed; log: %q", time.Since(start).Round(time.Millisecond), log.String())
	if lines := strings.Count(log.String(), "\n"); lines != 2 {
		t.Errorf("log has %d lines, want 2 (failure, recovery):\n%s", lines, log.String())
	}
}
