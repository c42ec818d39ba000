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
	stop := Serve(context.Background(), ln, testHandler(exposition))
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

// TestServeLimits checks that silent or surplus clients cannot hold the
// server: connections beyond MaxConns are closed at once, and stop closes
// idle ones after its grace period.
func TestServeLimits(t *testing.T) {
	ln := listen(t)
	stop := Serve(context.Background(), ln, testHandler("x 1\n"))
	var idle []net.Conn
	for range MaxConns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatalf("failed to dial: %v", err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	time.Sleep(100 * time.Millisecond) // all accepted and waiting for a request
	extra, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("failed to dial: %v", err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("connection beyond the limit: read %d, %v; want EOF", n, err)
	}
	start := time.Now()
	stop()
	if d := time.Since(start); d > StopGrace+time.Second {
		t.Errorf("stop took %v with idle connections", d)
	}
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("idle connection after stop: %v, want EOF", err)
		}
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
