package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// helperEnv names the helper a re-executed test binary plays (TestMain
// dispatches to runHelper before anything else), so that tests get a
// separate process, with a pid of its own, holding sockets.
const helperEnv = "RSTWATCH_TEST_HELPER"

// helperSockets is the helper that holds, in its network namespace, the
// sockets TestIntegrationSocketsMatchSS expects:
//
//	LISTEN     127.0.0.1:7300    and [::1]:7301
//	ESTAB      a connection to 127.0.0.1:7300, both ends
//	TIME-WAIT  the client end of a closed connection to [::1]:7301
//
// It prints "ready" on stdout and holds them until stdin closes.
const helperSockets = "sockets"

// runHelper runs the named helper and returns its exit code.
func runHelper(mode string) int {
	var err error
	switch mode {
	case helperSockets:
		err = holdSockets(os.Stdin, os.Stdout)
	case helperListen:
		err = listenThenExit(os.Getenv(helperAddrEnv), os.Stdout)
	case helperAbort:
		err = acceptThenAbort(os.Getenv(helperAddrEnv), os.Stdout)
	case helperChecker:
		err = checkThenReset(os.Getenv(helperAddrEnv), os.Stdout)
	case helperAbortAll:
		err = abortClients(os.Getenv(helperAddrEnv), os.Stdout)
	default:
		err = fmt.Errorf("unknown helper %q", mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err)
		return 1
	}
	return 0
}

func holdSockets(stdin io.Reader, stdout io.Writer) error {
	ln4, err := net.Listen("tcp4", "127.0.0.1:7300")
	if err != nil {
		return err
	}
	defer ln4.Close()
	ln6, err := net.Listen("tcp6", "[::1]:7301")
	if err != nil {
		return err
	}
	defer ln6.Close()

	client, err := net.Dial("tcp4", "127.0.0.1:7300")
	if err != nil {
		return err
	}
	defer client.Close()
	server, err := ln4.Accept()
	if err != nil {
		return err
	}
	defer server.Close()

	// The side that closes first ends in TIME-WAIT.
	c6, err := net.Dial("tcp6", "[::1]:7301")
	if err != nil {
		return err
	}
	s6, err := ln6.Accept()
	if err != nil {
		return err
	}
	c6.Close()
	s6.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s6.Read(make([]byte, 1)); err != io.EOF {
		return fmt.Errorf("want EOF after the client closed, got %v", err)
	}
	s6.Close()
	time.Sleep(50 * time.Millisecond) // the client's end reaches TIME-WAIT

	fmt.Fprintln(stdout, "ready")
	_, err = io.Copy(io.Discard, stdin)
	return err
}

// helperListen is the helper that listens on $RSTWATCH_TEST_ADDR, prints
// "ready", holds the listener for a second (several socket-table refreshes)
// and exits: a listener that was there and is gone.
const (
	helperListen  = "listen"
	helperAddrEnv = "RSTWATCH_TEST_ADDR"
)

func listenThenExit(addr string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ready")
	time.Sleep(time.Second)
	return ln.Close()
}

// helperAbort is the helper that listens on $RSTWATCH_TEST_ADDR, prints
// "ready", accepts one connection, keeps it for longer than a socket-table
// refresh and aborts it (SO_LINGER 0): a reset sent by a known process.
const helperAbort = "abort"

func acceptThenAbort(addr string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Fprintln(stdout, "ready")
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	time.Sleep(700 * time.Millisecond)
	c.(*net.TCPConn).SetLinger(0)
	return c.Close()
}

// helperChecker is a health checker: it prints "ready", then opens
// checkerConns connections to $RSTWATCH_TEST_ADDR at once, sends a request
// on each, reads the reply, keeps them longer than a socket-table refresh
// (so that it can be named) and closes each with a reset (SO_LINGER 0), as
// haproxy's checks do.
const (
	helperChecker = "checker"
	checkerConns  = 3
)

func checkThenReset(addr string, stdout io.Writer) error {
	fmt.Fprintln(stdout, "ready")
	var conns []*net.TCPConn
	for range checkerConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		conns = append(conns, c.(*net.TCPConn))
		if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Read(make([]byte, 512)); err != nil {
			return fmt.Errorf("read the reply: %w", err)
		}
	}
	time.Sleep(700 * time.Millisecond)
	for _, c := range conns {
		c.SetLinger(0)
		c.Close()
	}
	return nil
}

// helperAbortAll is a server that aborts its clients: it listens on
// $RSTWATCH_TEST_ADDR, prints "ready", accepts checkerConns connections,
// reads a request from each, keeps them longer than a socket-table refresh
// and aborts them all (SO_LINGER 0) without replying.
const helperAbortAll = "abortall"

func abortClients(addr string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Fprintln(stdout, "ready")
	var conns []*net.TCPConn
	for range checkerConns {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		c.Read(make([]byte, 512))
		conns = append(conns, c.(*net.TCPConn))
	}
	time.Sleep(700 * time.Millisecond)
	for _, c := range conns {
		c.SetLinger(0)
		c.Close()
	}
	return nil
}
