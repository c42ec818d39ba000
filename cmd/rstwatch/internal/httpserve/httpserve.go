package httpserve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Limits of the server.
const (
	MaxHeader        = 8 << 10         // request line and headers, like net/http's MaxHeaderBytes
	httpReadTimeout  = 5 * time.Second // for the request line and headers
	httpWriteTimeout = 10 * time.Second
	MaxConns         = 16 // connections served at once; more are closed unanswered
	httpDrainLimit   = 64 << 10
	httpDrainTimeout = 500 * time.Millisecond
	StopGrace        = time.Second // stop waits this long for requests in flight
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

// serveConn answers one request on c and closes it.
func serveConn(c net.Conn, h *Handler) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(httpReadTimeout))
	lr := &io.LimitedReader{R: c, N: MaxHeader}
	req, err := ReadRequest(bufio.NewReaderSize(lr, MaxHeader))
	var resp []byte
	const textPlain = "text/plain; charset=utf-8"
	switch {
	case errors.Is(err, ErrBadRequest):
		resp = appendHTTPResponse(nil, 400, "Bad Request", textPlain, "", []byte("400 Bad Request\n"), false)
	case lr.N == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, bufio.ErrBufferFull)):
		resp = appendHTTPResponse(nil, 431, "Request Header Fields Too Large", textPlain, "", []byte("431 Request Header Fields Too Large\n"), false)
	case err != nil:
		return // the peer closed, reset or timed out: it gets nothing
	case req.Path != h.Path:
		resp = appendHTTPResponse(nil, 404, "Not Found", textPlain, "", []byte("404 page not found\n"), req.Method == "HEAD")
	case req.Method != "GET" && req.Method != "HEAD":
		resp = appendHTTPResponse(nil, 405, "Method Not Allowed", textPlain, "Allow: GET, HEAD\r\n", []byte("method not allowed\n"), false)
	default:
		body := h.Body(make([]byte, 0, 8<<10))
		resp = appendHTTPResponse(make([]byte, 0, len(body)+256), 200, "OK", h.ContentType, "", body, req.Method == "HEAD")
	}
	c.SetWriteDeadline(time.Now().Add(httpWriteTimeout))
	if _, err := c.Write(resp); err != nil {
		return
	}
	// Closing with unread bytes (a request body, a pipelined request)
	// would make the kernel answer with a reset that can destroy the
	// response before the client reads it: half-close, then drain what
	// the client still sends, briefly.
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
		c.SetReadDeadline(time.Now().Add(httpDrainTimeout))
		io.Copy(io.Discard, io.LimitReader(c, httpDrainLimit))
	}
}

// Serve serves h on ln until ctx ends or stop is called; stop closes the
// listener, waits up to StopGrace for requests in flight, then closes what
// is left, and may be called more than once.
func Serve(ctx context.Context, ln net.Listener, h Handler) (stop func()) {
	var (
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
		wg    sync.WaitGroup
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				return // closed by stop
			}
			mu.Lock()
			if len(conns) >= MaxConns {
				mu.Unlock()
				c.Close()
				continue
			}
			conns[c] = struct{}{}
			wg.Add(1)
			mu.Unlock()
			go func() {
				defer wg.Done()
				serveConn(c, &h)
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	var once sync.Once
	shutdown := func() {
		once.Do(func() {
			ln.Close()
			<-done
			idle := make(chan struct{})
			go func() { wg.Wait(); close(idle) }()
			select {
			case <-idle:
			case <-time.After(StopGrace):
				mu.Lock()
				for c := range conns {
					c.Close()
				}
				mu.Unlock()
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
