package httpserve

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts the connections the server holds open (accepted
// and not yet closed), and the most it ever held: each is a file
// descriptor.
type countingListener struct {
	net.Listener
	open, max atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := l.open.Add(1)
	for {
		m := l.max.Load()
		if n <= m || l.max.CompareAndSwap(m, n) {
			break
		}
	}
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

func (c *countedConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// scrapeOnce makes one scrape of addr within timeout, as Prometheus does:
// connect, send the whole request at once, read the response.
func scrapeOnce(addr, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: "+addr+"\r\nUser-Agent: Prometheus/3.0\r\nAccept: text/plain\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || string(body) != want {
		return errors.New("wrong response: " + resp.Status)
	}
	return nil
}

// idleAttacker connects, sends nothing, and reconnects as soon as the
// server closes the connection, until ctx ends.
func idleAttacker(ctx context.Context, addr string) {
	d := net.Dialer{Timeout: time.Second}
	for ctx.Err() == nil {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		unwatch := context.AfterFunc(ctx, func() { c.Close() })
		io.Copy(io.Discard, c) // until the server closes it
		unwatch()
		c.Close()
	}
}

// slowAttacker sends a request one byte a second (slowloris), and
// reconnects as soon as the server closes the connection, until ctx ends.
func slowAttacker(ctx context.Context, addr string) {
	const req = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " // then 'a' forever
	d := net.Dialer{Timeout: time.Second}
	for ctx.Err() == nil {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		unwatch := context.AfterFunc(ctx, func() { c.Close() })
		for i := 0; ctx.Err() == nil; i++ {
			b := byte('a')
			if i < len(req) {
				b = req[i]
			}
			if _, err := c.Write([]byte{b}); err != nil {
				break
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(make([]byte, 64)); !errors.Is(err, timeoutErr) {
				break // closed (or answered): reconnect
			}
		}
		unwatch()
		c.Close()
	}
}

var timeoutErr = errTimeout{}

type errTimeout struct{}

func (errTimeout) Error() string { return "timeout" }
func (errTimeout) Is(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestServeUnderAttack runs the attacks of issue 10 at once: 64 clients
// that connect, send nothing and reconnect as soon as they are closed, and
// 16 that send a request one byte a second (slowloris). Meanwhile a client
// scrapes in a loop, as Prometheus would, each scrape within scrapeTimeout.
// At least 95% of the scrapes must succeed, and the server must never hold
// more than MaxConns+1 connections (its file descriptors) or grow its
// goroutines beyond its connections.
func TestServeUnderAttack(t *testing.T) {
	const (
		idle, slow    = 64, 16
		warmup        = 500 * time.Millisecond
		attackFor     = 6 * time.Second
		scrapeTimeout = 3 * time.Second
		scrapeEvery   = 150 * time.Millisecond
	)
	exposition := strings.Repeat("rstwatch_resets_total{cause=\"refused\",direction=\"in\",port=\"7211\"} 1\n", 100)
	ln := &countingListener{Listener: listen(t)}
	stop := Serve(context.Background(), ln, testHandler(exposition), nil)
	defer stop()
	addr := ln.Addr().String()
	goroutines0 := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range idle {
		wg.Go(func() { idleAttacker(ctx, addr) })
	}
	for range slow {
		wg.Go(func() { slowAttacker(ctx, addr) })
	}
	var (
		maxGoroutines int
		maxHeap       uint64
		mu            sync.Mutex
	)
	wg.Go(func() {
		var ms runtime.MemStats
		for ctx.Err() == nil {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			maxGoroutines = max(maxGoroutines, runtime.NumGoroutine())
			maxHeap = max(maxHeap, ms.HeapInuse)
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	})
	time.Sleep(warmup)

	// Scrapes start on a schedule, each in its own goroutine, as from
	// Prometheus servers scraping at their own pace.
	var (
		ok, total int
		lat       []time.Duration
		errs      []string
		scrapes   sync.WaitGroup
	)
	for end := time.Now().Add(attackFor); time.Now().Before(end); time.Sleep(scrapeEvery) {
		scrapes.Go(func() {
			start := time.Now()
			err := scrapeOnce(addr, exposition, scrapeTimeout)
			mu.Lock()
			defer mu.Unlock()
			total++
			if err == nil {
				ok++
				lat = append(lat, time.Since(start))
			} else if len(errs) < 5 {
				errs = append(errs, err.Error())
			}
		})
	}
	scrapes.Wait()
	cancel()
	wg.Wait()

	slices.Sort(lat)
	pct := func(p int) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, len(lat)*p/100)]
	}
	mu.Lock()
	t.Logf("%d idle + %d slowloris attackers: %d/%d scrapes succeeded (%.1f%%), latency p50 %v p95 %v max %v; "+
		"server held at most %d connections; goroutines %d before, at most %d during (%d attackers); heap in use at most %d KiB (clients included)",
		idle, slow, ok, total, 100*float64(ok)/float64(total), pct(50), pct(95), pct(100),
		ln.max.Load(), goroutines0, maxGoroutines, idle+slow, maxHeap>>10)
	mu.Unlock()
	if total < 20 {
		t.Errorf("only %d scrapes in %v", total, attackFor)
	}
	if float64(ok) < 0.95*float64(total) {
		t.Errorf("%d of %d scrapes succeeded under attack, want at least 95%%; errors: %q", ok, total, errs)
	}
	if m := ln.max.Load(); m > MaxConns+1 {
		t.Errorf("server held %d connections at once, want at most MaxConns+1 = %d", m, MaxConns+1)
	}
	// Attackers and the sampler are goroutines of the test; the server may
	// add one per connection, plus its accept loop.
	if limit := goroutines0 + idle + slow + 1 + 2*(MaxConns+1); maxGoroutines > limit {
		t.Errorf("%d goroutines during the attack, want at most %d", maxGoroutines, limit)
	}
}
