package httpserve

import (
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a log the server writes from its goroutine while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// failingListener fails its Accepts with EMFILE, as accept(2) does when
// the process is out of file descriptors, while failing is set, and
// records when Accept was called.
type failingListener struct {
	net.Listener
	mu      sync.Mutex
	failing bool
	calls   []time.Time
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls = append(l.calls, time.Now())
	failing := l.failing
	l.mu.Unlock()
	if failing {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

func (l *failingListener) set(failing bool) (calls int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failing = failing
	return len(l.calls)
}

// TestServeAcceptBackoff checks that accept errors do not end the server:
// it retries after a pause that doubles from 5 ms up to a second, logs the
// run of errors once, and serves again once accept works.
func TestServeAcceptBackoff(t *testing.T) {
	ln := &failingListener{Listener: listen(t), failing: true}
	var log syncBuffer
	stop := Serve(context.Background(), ln, testHandler("x 1\n"), &log)
	defer stop()
	const failFor = 700 * time.Millisecond
	time.Sleep(failFor)
	// 5, 10, 20, ... 320 ms: 7 retries in 635 ms, the 8th at 1275 ms.
	ln.mu.Lock()
	calls := append([]time.Time(nil), ln.calls...)
	ln.mu.Unlock()
	if len(calls) < 4 || len(calls) > 10 {
		t.Errorf("%d accepts in %v of EMFILE, want about 8 (backoff from 5 ms, doubling)", len(calls), failFor)
	}
	// Sleeps only overshoot on a busy machine: check the least pauses.
	for i, want := 1, acceptRetryMin; i < len(calls); i, want = i+1, min(2*want, acceptRetryMax) {
		if d := calls[i].Sub(calls[i-1]); d < want-time.Millisecond {
			t.Errorf("pause %d was %v, want at least %v (doubling from %v)", i, d, want, acceptRetryMin)
		}
	}
	ln.set(false)
	// The server is sleeping up to 640 ms before its next try.
	if err := scrapeOnce(ln.Addr().String(), "x 1\n", 3*time.Second); err != nil {
		t.Fatalf("scrape after accept recovered: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "too many open files; retrying with backoff") ||
		!strings.Contains(lines[1], "accepting again after ") {
		t.Errorf("log of a run of %d accept errors:\n%s\nwant one line for the failures, one for the recovery", len(calls), log.String())
	}

	// A second run soon after is retried as well, but not logged again.
	ln.set(true)
	time.Sleep(50 * time.Millisecond)
	ln.set(false)
	if err := scrapeOnce(ln.Addr().String(), "x 1\n", 3*time.Second); err != nil {
		t.Fatalf("scrape after a second run of errors: %v", err)
	}
	if n := strings.Count(log.String(), "\n"); n != 2 {
		t.Errorf("log after a second run of errors within a minute:\n%s\nwant it unchanged", log.String())
	}
}
