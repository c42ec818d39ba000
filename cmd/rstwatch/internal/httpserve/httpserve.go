package httpserve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Limits of the server. A Prometheus scrape sends its whole request at
// once, on a fresh connection, so a client that is slow to send one is not
// a scraper, and the server can afford to be strict with it.
const (
	MaxHeader = 8 << 10 // request line and headers, like net/http's MaxHeaderBytes
	// ReadTimeout bounds the whole request line and headers, from the
	// moment the connection is taken: a total, not a per-read timeout, so
	// that a client sending a byte now and then (slowloris) cannot hold a
	// connection longer than this.
	ReadTimeout = 2 * time.Second
	// MaxConns is how many connections are served at once. A connection
	// waiting beyond them stays in the kernel's accept queue, where it
	// costs the process no file descriptor, until one is free or evicted.
	MaxConns = 64
	// EvictAfter is the time a connection is guaranteed to send its
	// request. When all MaxConns are taken and another connection waits,
	// the oldest connection still sending its request (or already
	// answered) is closed once it is EvictAfter old, to make room. A
	// scrape sends its request at once, so it is done in far less; what
	// is evicted is what holds a connection without using it. It also
	// bounds the rate of evictions, hence the CPU an attacker can make
	// the server spend, to MaxConns per EvictAfter.
	EvictAfter       = 200 * time.Millisecond
	httpWriteTimeout = 5 * time.Second
	httpDrainLimit   = 64 << 10
	httpDrainTimeout = 500 * time.Millisecond
	StopGrace        = time.Second // stop waits this long for requests in flight
	// Accept errors (EMFILE, ENFILE, ENOBUFS...) are retried after a
	// pause that doubles from acceptRetryMin to acceptRetryMax, as
	// net/http does.
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
	// acceptLogEvery is the least time between two logged runs of accept
	// errors, so that an fd limit the server keeps hitting and leaving
	// does not flood the log.
	acceptLogEvery = time.Minute
)

// Request is what the server reads of a request.
type Request struct {
	Method, Path  string // the path without its query
	ContentLength int64  // -1: none or unknown
}

// ErrBadRequest is ReadRequest's error for bytes that are not an HTTP/1.x
// request line and headers.
var ErrBadRequest = errors.New("malformed HTTP request")

// ReadRequest reads a request line and headers (RFC 9112) from r, which
// should be limited to MaxHeader bytes. Its errors are ErrBadRequest or
// those of r (io.EOF, bufio.ErrBufferFull, a timeout).
func ReadRequest(r *bufio.Reader) (Request, error) {
	req := Request{ContentLength: -1}
	line, err := readHTTPLine(r)
	if err != nil {
		return req, err
	}
	// method SP request-target SP HTTP-version
	method, rest, ok1 := bytes.Cut(line, []byte(" "))
	target, version, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 || !bytes.HasPrefix(version, []byte("HTTP/1.")) {
		return req, ErrBadRequest
	}
	req.Method = string(method)
	// The path without a query; an absolute-form target keeps only its path.
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	if bytes.HasPrefix(target, []byte("http://")) {
		if i := bytes.IndexByte(target[len("http://"):], '/'); i >= 0 {
			target = target[len("http://")+i:]
		} else {
			target = []byte("/")
		}
	}
	if len(target) == 0 {
		return req, ErrBadRequest // the target was a bare query ("?x")
	}
	req.Path = string(target)
	for {
		line, err := readHTTPLine(r)
		if err != nil {
			return req, err
		}
		if len(line) == 0 {
			return req, nil
		}
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return req, ErrBadRequest
		}
		if bytes.EqualFold(name, []byte("Content-Length")) {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(val)), 10, 64)
			if err != nil || n < 0 {
				return req, ErrBadRequest
			}
			req.ContentLength = n
		}
	}
}

// readHTTPLine reads one CRLF- (or LF-) terminated line without its end.
func readHTTPLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return line, nil
}

// appendHTTPResponse appends a complete response: status line, headers
// and, unless head, the body.
func appendHTTPResponse(b []byte, code int, reason string, contentType string, extra string, body []byte, head bool) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, reason...)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, contentType...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nConnection: close\r\n"...)
	b = append(b, extra...)
	b = append(b, "\r\n"...)
	if !head {
		b = append(b, body...)
	}
	return b
}

// Handler is what the server serves: one resource, at Path, to GET and
// HEAD. Body appends the resource as it is now to the buffer it is given;
// it is called from the connection's goroutine, so it must be safe for
// concurrent use.
type Handler struct {
	Path        string
	ContentType string
	Body        func([]byte) []byte
}

// server is one Serve: its listener, its connections and its state.
type server struct {
	ln   net.Listener
	h    Handler
	log  io.Writer
	quit chan struct{} // closed by stop
	// freed gets a token when a connection leaves conns, for an accept
	// loop waiting for room.
	freed chan struct{}
	wg    sync.WaitGroup // connection goroutines

	mu    sync.Mutex
	conns map[*conn]struct{} // connections being served; len <= MaxConns
}

// conn is a served connection.
type conn struct {
	net.Conn
	start time.Time
	// answering is true from a complete request to its response written:
	// the only time a connection is not evicted to make room. Under
	// server.mu.
	answering bool
}

// Serve serves h on ln until ctx ends or stop is called; stop closes the
// listener, waits up to StopGrace for requests in flight, then closes what
// is left, and may be called more than once. Accept errors are written to
// errLog (nil: discarded), once for a run of failures, and retried with
// backoff; the server stops only when ln is closed.
func Serve(ctx context.Context, ln net.Listener, h Handler, errLog io.Writer) (stop func()) {
	if errLog == nil {
		errLog = io.Discard
	}
	s := &server{ln: ln, h: h, log: errLog, quit: make(chan struct{}),
		freed: make(chan struct{}, 1), conns: make(map[*conn]struct{}, MaxConns)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.acceptLoop()
	}()
	var once sync.Once
	shutdown := func() {
		once.Do(func() {
			close(s.quit)
			ln.Close()
			<-done
			idle := make(chan struct{})
			go func() { s.wg.Wait(); close(idle) }()
			select {
			case <-idle:
			case <-time.After(StopGrace):
				s.mu.Lock()
				for c := range s.conns {
					c.Close()
				}
				s.mu.Unlock()
				<-idle
			}
		})
	}
	unwatch := context.AfterFunc(ctx, shutdown)
	return func() {
		unwatch()
		shutdown()
	}
}

// acceptLoop accepts and serves connections until the listener is closed.
func (s *server) acceptLoop() {
	var errs acceptErrors
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Not net/http's Temporary() test: that is deprecated and
			// an error it calls permanent (say, the socket was shut
			// down) would end the server silently, as it did before
			// (issue 10). Retrying once a second at worst costs nothing.
			select {
			case <-time.After(errs.failed(s.log, err)):
			case <-s.quit:
				return
			}
			continue
		}
		errs.ok(s.log, s.ln.Addr())
		if !s.makeRoom() {
			nc.Close()
			return
		}
		c := &conn{Conn: nc, start: time.Now()}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(c)
		}()
	}
}

// acceptErrors tracks a run of failed accepts, for the backoff and the log.
type acceptErrors struct {
	n         int           // failures in this run
	delay     time.Duration // the current pause
	since     time.Time     // of the run's first failure
	logged    bool          // this run was logged
	lastPrint time.Time     // when a run was last logged
}

// failed counts a failed accept, logs it if it starts a run (and no run
// was logged in the last acceptLogEvery) and returns how long to wait.
func (a *acceptErrors) failed(log io.Writer, err error) time.Duration {
	now := time.Now()
	if a.n == 0 {
		a.since, a.delay = now, acceptRetryMin
		if a.lastPrint.IsZero() || now.Sub(a.lastPrint) >= acceptLogEvery {
			fmt.Fprintf(log, "%v; retrying with backoff up to %v\n", err, acceptRetryMax)
			a.logged, a.lastPrint = true, now
		}
	} else {
		a.delay = min(2*a.delay, acceptRetryMax)
	}
	a.n++
	return a.delay
}

// ok ends a run of failures, logging the recovery if the run was logged.
func (a *acceptErrors) ok(log io.Writer, addr net.Addr) {
	if a.n == 0 {
		return
	}
	if a.logged {
		fmt.Fprintf(log, "accept %s %v: accepting again after %d failed accepts in %v\n",
			addr.Network(), addr, a.n, time.Since(a.since).Round(time.Millisecond))
	}
	a.n, a.logged = 0, false
}

// makeRoom returns when a new connection may be served: at once if fewer
// than MaxConns are, else when one ends or when the oldest connection not
// answering is EvictAfter old, which it then closes. It returns false if
// the server stops meanwhile.
func (s *server) makeRoom() bool {
	for {
		s.mu.Lock()
		if len(s.conns) < MaxConns {
			s.mu.Unlock()
			return true
		}
		var oldest *conn
		for c := range s.conns {
			if !c.answering && (oldest == nil || c.start.Before(oldest.start)) {
				oldest = c
			}
		}
		wait := time.Duration(-1) // all are answering: wait for one to end
		if oldest != nil {
			if wait = EvictAfter - time.Since(oldest.start); wait <= 0 {
				delete(s.conns, oldest)
				s.mu.Unlock()
				oldest.Close() // its goroutine sees the error and ends
				return true
			}
		}
		s.mu.Unlock()
		if !s.waitRoom(wait) {
			return false
		}
	}
}

// waitRoom waits until a connection ends or for d (forever if d < 0); it
// returns false if the server stops meanwhile.
func (s *server) waitRoom(d time.Duration) bool {
	var expired <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-s.freed:
	case <-expired:
	case <-s.quit:
		return false
	}
	return true
}

// setAnswering marks c as answering (or not); it returns false if c was
// evicted meanwhile.
func (s *server) setAnswering(c *conn, answering bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return false
	}
	c.answering = answering
	return true
}

// drop closes c and frees its place, if it was not evicted first.
func (s *server) drop(c *conn) {
	c.Close()
	s.mu.Lock()
	_, ok := s.conns[c]
	delete(s.conns, c)
	s.mu.Unlock()
	if ok {
		select {
		case s.freed <- struct{}{}:
		default:
		}
	}
}

// requestReader reads a request from a connection; they are pooled so
// that the connections an attacker opens and drops do not each cost a
// fresh MaxHeader buffer.
type requestReader struct {
	lr io.LimitedReader
	br *bufio.Reader
}

var requestReaders = sync.Pool{New: func() any {
	r := new(requestReader)
	r.br = bufio.NewReaderSize(&r.lr, MaxHeader)
	return r
}}

// readRequest reads c's request line and headers within ReadTimeout of
// its start. full reports whether MaxHeader bytes were read.
func readRequest(c *conn) (req Request, full bool, err error) {
	c.SetReadDeadline(c.start.Add(ReadTimeout))
	rr := requestReaders.Get().(*requestReader)
	rr.lr = io.LimitedReader{R: c.Conn, N: MaxHeader}
	rr.br.Reset(&rr.lr)
	req, err = ReadRequest(rr.br)
	full = rr.lr.N == 0
	rr.lr.R = nil
	rr.br.Reset(&rr.lr)
	requestReaders.Put(rr)
	return req, full, err
}

// serve answers one request on c and closes it.
func (s *server) serve(c *conn) {
	defer s.drop(c)
	req, full, err := readRequest(c)
	const textPlain = "text/plain; charset=utf-8"
	tooLarge := full && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, bufio.ErrBufferFull))
	if err != nil && !errors.Is(err, ErrBadRequest) && !tooLarge {
		return // the peer closed, reset, timed out or was evicted: it gets nothing
	}
	if !s.setAnswering(c, true) {
		return // evicted as its request came in
	}
	var resp []byte
	switch {
	case errors.Is(err, ErrBadRequest):
		resp = appendHTTPResponse(nil, 400, "Bad Request", textPlain, "", []byte("400 Bad Request\n"), false)
	case tooLarge:
		resp = appendHTTPResponse(nil, 431, "Request Header Fields Too Large", textPlain, "", []byte("431 Request Header Fields Too Large\n"), false)
	case req.Path != s.h.Path:
		resp = appendHTTPResponse(nil, 404, "Not Found", textPlain, "", []byte("404 page not found\n"), req.Method == "HEAD")
	case req.Method != "GET" && req.Method != "HEAD":
		resp = appendHTTPResponse(nil, 405, "Method Not Allowed", textPlain, "Allow: GET, HEAD\r\n", []byte("method not allowed\n"), false)
	default:
		body := s.h.Body(make([]byte, 0, 8<<10))
		resp = appendHTTPResponse(make([]byte, 0, len(body)+256), 200, "OK", s.h.ContentType, "", body, req.Method == "HEAD")
	}
	c.SetWriteDeadline(time.Now().Add(httpWriteTimeout))
	_, err = c.Write(resp)
	if err != nil || !s.setAnswering(c, false) {
		return
	}
	// Closing with unread bytes (a request body, a pipelined request)
	// would make the kernel answer with a reset that can destroy the
	// response before the client reads it: half-close, then drain what
	// the client still sends, briefly. The connection may be evicted
	// meanwhile: its response is sent.
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		c.SetReadDeadline(time.Now().Add(httpDrainTimeout))
		io.Copy(io.Discard, io.LimitReader(c, httpDrainLimit))
	}
}
