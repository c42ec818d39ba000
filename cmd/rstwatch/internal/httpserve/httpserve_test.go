package httpserve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawExchange sends req on a fresh connection to addr and returns the
// response, read to its end (the server closes every connection).
func rawExchange(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("failed to dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("failed to send: %v", err)
	}
	br := bufio.NewReader(c)
	// The response to HEAD has a Content-Length but no body.
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("failed to read the response to %q: %v", req, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("failed to read the body: %v", err)
	}
	if rest, _ := io.ReadAll(br); len(rest) > 0 {
		t.Errorf("bytes after the response: %q", rest)
	}
	return resp, string(body)
}

// testHandler serves a fixed exposition, as the metrics registry would.
func testHandler(exposition string) Handler {
	return Handler{Path: "/metrics", ContentType: "text/plain; version=0.0.4; charset=utf-8",
		Body: func(b []byte) []byte { return append(b, exposition...) }}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen: %v", err)
	}
	return ln
}

func TestServe(t *testing.T) {
	const exposition = "# HELP rstwatch_resets_total Resets.\n# TYPE rstwatch_resets_total counter\n" +
		`rstwatch_resets_total{cause="refused",direction="local",port="7211"} 1` + "\n"
	ln := listen(t)
	stop := Serve(context.Background(), ln, testHandler(exposition), nil)
	defer stop()
	addr := ln.Addr().String()

	tests := []struct {
		name, req string
		code      int
		body      string // "" for none; "*" for the exposition
		header    map[string]string
	}{
		{"get", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200, "*",
			map[string]string{"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}},
		{"http10_lf_only", "GET /metrics HTTP/1.0\n\n", 200, "*", nil},
		{"query", "GET /metrics?name[]=x HTTP/1.1\r\n\r\n", 200, "*", nil},
		{"absolute_form", "GET http://example:9464/metrics HTTP/1.1\r\n\r\n", 200, "*", nil},
		{"head", "HEAD /metrics HTTP/1.1\r\n\r\n", 200, "", map[string]string{"Content-Length": "EXPOSITION_LEN"}},
		{"not_found", "GET / HTTP/1.1\r\n\r\n", 404, "404 page not found\n", nil},
		{"post_with_body", "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 405, "method not allowed\n",
			map[string]string{"Allow": "GET, HEAD"}},
		{"bad_request_line", "GARBAGE\r\n\r\n", 400, "400 Bad Request\n", nil},
		{"bad_header", "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", 400, "400 Bad Request\n", nil},
		{"bad_length", "POST /metrics HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "400 Bad Request\n", nil},
		{"http2_preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "400 Bad Request\n", nil},
		{"header_too_large", "GET /metrics HTTP/1.1\r\nX: " + strings.Repeat("a", MaxHeader) + "\r\n\r\n", 431,
			"431 Request Header Fields Too Large\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawExchange(t, addr, tt.req)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.code, body)
			}
			if !resp.Close {
				t.Errorf("no Connection: close")
			}
			want := tt.body
			if want == "*" {
				want = exposition
			}
			if body != want {
				t.Errorf("body %q, want %q", body, want)
			}
			for k, v := range tt.header {
				if v == "EXPOSITION_LEN" {
					v = strconv.Itoa(len(exposition))
				}
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}

	// The standard client, which keeps connections alive when it can,
	// gets the same.
	for range 3 {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatalf("failed to GET: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != exposition {
			t.Fatalf("GET: %d %q", resp.StatusCode, b)
		}
	}
}

// dialN opens n connections to ln that send nothing, and waits until the
// server holds all of them (in the order dialled).
func dialN(t *testing.T, ln *countingListener, n int) []net.Conn {
	t.Helper()
	var cs []net.Conn
	for range n {
		want := ln.open.Load() + 1
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatalf("failed to dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
		for deadline := time.Now().Add(2 * time.Second); ln.open.Load() < want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("server holds %d connections, want %d", ln.open.Load(), want)
			}
		}
	}
	return cs
}

// closedWithin reports whether the server closes c within d, having sent
// nothing.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	n, err := c.Read(make([]byte, 1))
	return n == 0 && err == io.EOF
}

// TestServeEviction checks that silent clients holding every connection
// cannot lock a scrape out: a connection beyond MaxConns is served once
// the oldest silent one has had EvictAfter to send a request, and that one
// alone is closed; a connection being answered is never evicted; stop
// closes idle connections after its grace period.
func TestServeEviction(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	var calls atomic.Int32
	h := testHandler("x 1\n")
	body := h.Body
	h.Body = func(b []byte) []byte {
		if calls.Add(1) == 1 {
			<-release // the first request is slow to answer
		}
		return body(b)
	}
	ln := &countingListener{Listener: listen(t)}
	stop := Serve(context.Background(), ln, h, nil)
	defer stop()
	defer unblock() // before stop, which waits for the handler
	addr := ln.Addr().String()

	// The oldest connection is being answered, the others are silent.
	slow := make(chan error, 1)
	go func() { slow <- scrapeOnce(addr, "x 1\n", 5*time.Second) }()
	for deadline := time.Now().Add(2 * time.Second); calls.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first request did not reach the handler")
		}
	}
	idle := dialN(t, ln, MaxConns-1)

	start := time.Now()
	if err := scrapeOnce(addr, "x 1\n", 2*time.Second); err != nil {
		t.Fatalf("scrape with %d connections taken: %v", MaxConns, err)
	}
	if d := time.Since(start); d > EvictAfter+time.Second {
		t.Errorf("scrape took %v with every connection taken, want about EvictAfter (%v)", d, EvictAfter)
	}
	if !closedWithin(idle[0], time.Second) {
		t.Errorf("the oldest silent connection was not closed to make room")
	}
	for i, c := range idle[1:] {
		if closedWithin(c, time.Millisecond) {
			t.Errorf("silent connection %d closed, only the oldest should be", i+1)
		}
	}
	unblock()
	if err := <-slow; err != nil {
		t.Errorf("the request being answered failed: %v", err)
	}

	start = time.Now()
	stop()
	if d := time.Since(start); d > StopGrace+time.Second {
		t.Errorf("stop took %v with idle connections", d)
	}
	for _, c := range idle[1:] {
		if !closedWithin(c, time.Second) {
			t.Errorf("idle connection still open after stop")
		}
	}
}

// TestServeReadTimeout checks that a client sending its request a byte at
// a time (slowloris) is closed ReadTimeout after it connected, however
// often it sends.
func TestServeReadTimeout(t *testing.T) {
	ln := listen(t)
	stop := Serve(context.Background(), ln, testHandler("x 1\n"), nil)
	defer stop()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("failed to dial: %v", err)
	}
	defer c.Close()
	start := time.Now()
	req := "GET /metrics HTTP/1.1\r\nX-Slow: " + strings.Repeat("a", 1000)
	for i := 0; ; i++ {
		if _, err := c.Write([]byte{req[i%len(req)]}); err != nil {
			break
		}
		if closedWithin(c, 100*time.Millisecond) {
			break
		}
		if time.Since(start) > ReadTimeout+time.Second {
			t.Fatalf("connection sending a byte every 100ms still open after %v", time.Since(start))
		}
	}
	if d := time.Since(start); d < ReadTimeout-200*time.Millisecond {
		t.Errorf("closed after %v, before ReadTimeout (%v)", d, ReadTimeout)
	}
}

// TestReadRequest checks what the parser keeps of a request.
func TestReadRequest(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     Request
		err      error
	}{
		{"get", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", Request{"GET", "/metrics", -1}, nil},
		{"query_and_length", "POST /metrics?a=b HTTP/1.0\ncontent-length: 12\n\n", Request{"POST", "/metrics", 12}, nil},
		{"absolute_form", "GET http://h:1/metrics HTTP/1.1\r\n\r\n", Request{"GET", "/metrics", -1}, nil},
		{"absolute_form_no_path", "GET http://h:1 HTTP/1.1\r\n\r\n", Request{"GET", "/", -1}, nil},
		{"no_version", "GET /metrics\r\n\r\n", Request{}, ErrBadRequest},
		{"query_only", "GET ?x HTTP/1.1\r\n\r\n", Request{}, ErrBadRequest},
		{"http2", "PRI * HTTP/2.0\r\n\r\n", Request{}, ErrBadRequest},
		{"header_without_colon", "GET / HTTP/1.1\r\nbad\r\n\r\n", Request{}, ErrBadRequest},
		{"bad_length", "GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", Request{}, ErrBadRequest},
		{"cut_short", "GET / HTTP/1.1\r\nHost: x", Request{}, io.ErrUnexpectedEOF},
		{"empty", "", Request{}, io.EOF},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadRequest(bufio.NewReader(strings.NewReader(tt.in)))
			if !errors.Is(err, tt.err) {
				t.Fatalf("ReadRequest(%q) error %v, want %v", tt.in, err, tt.err)
			}
			if err == nil && got != tt.want {
				t.Errorf("ReadRequest(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzReadRequest feeds the parser what a client on the network can send,
// limited to MaxHeader bytes as the server limits it: it must not panic,
// must end with a request or an error, and a request it accepts must have
// a method and a path without a query, and no negative Content-Length but
// the -1 that means none.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /metrics HTTP/1.0\n\n",
		"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
		"GET http://example:9464/metrics?x=1 HTTP/1.1\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GARBAGE\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		lr := &io.LimitedReader{R: bytes.NewReader(in), N: MaxHeader}
		req, err := ReadRequest(bufio.NewReaderSize(lr, MaxHeader))
		if err != nil {
			return
		}
		if req.Method == "" || req.Path == "" || strings.ContainsRune(req.Path, '?') {
			t.Fatalf("ReadRequest(%q) = %+v", in, req)
		}
		if req.ContentLength < -1 {
			t.Fatalf("ReadRequest(%q): Content-Length %d", in, req.ContentLength)
		}
		if !bytes.Contains(in, []byte(req.Method+" ")) {
			t.Fatalf("ReadRequest(%q): method %q not in the input", in, req.Method)
		}
	})
}
