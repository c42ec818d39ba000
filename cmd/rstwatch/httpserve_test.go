package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc"
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

func TestMetricsHTTP(t *testing.T) {
	m := newMetrics(proc.FS{})
	m.observeReset("refused", "local", 7211)
	ln, err := listenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen: %v", err)
	}
	stop := serveMetrics(context.Background(), ln, m)
	defer stop()
	addr := ln.Addr().String()
	exposition := string(m.appendExposition(nil))
	// The kernel counters are absent (no /proc), so the exposition is stable.

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
		{"header_too_large", "GET /metrics HTTP/1.1\r\nX: " + strings.Repeat("a", httpMaxHeader) + "\r\n\r\n", 431,
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

// TestMetricsHTTPLimits checks that silent or surplus clients cannot hold
// the server: connections beyond httpMaxConns are closed at once, and stop
// closes idle ones after its grace period.
func TestMetricsHTTPLimits(t *testing.T) {
	ln, err := listenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen: %v", err)
	}
	stop := serveMetrics(context.Background(), ln, newMetrics(proc.FS{}))
	var idle []net.Conn
	for range httpMaxConns {
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
	if d := time.Since(start); d > httpStopGrace+time.Second {
		t.Errorf("stop took %v with idle connections", d)
	}
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("idle connection after stop: %v, want EOF", err)
		}
	}
}
