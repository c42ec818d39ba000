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
