package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/httpserve"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/metrics"
)

// metricsFlag is the --metrics flag, for the commands that serve metrics.
func metricsFlag() cli.Flag {
	return &cli.StringFlag{Name: flagMetrics, Usage: "serve Prometheus metrics on `ADDR` (HOST:PORT, e.g. 127.0.0.1:9464 or :9464) at /metrics"}
}

// listenMetrics checks addr (HOST:PORT; HOST may be empty for every
// address) and listens on it. A malformed address, a host that is not this
// machine's and a name that does not resolve are usage errors; an address
// in use is a plain error that says so.
func listenMetrics(addr string) (net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usagef("invalid --%s %q: want HOST:PORT, e.g. 127.0.0.1:9464 or :9464", flagMetrics, addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return nil, usagef("invalid --%s %q: port %q is not a number from 0 to 65535", flagMetrics, addr, port)
	}
	ln, err := net.Listen("tcp", addr)
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return ln, nil
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("--%s %s: address already in use (another rstwatch or exporter listening there?)", flagMetrics, addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return nil, usagef("invalid --%s %q: not an address of this host", flagMetrics, addr)
	case errors.As(err, &dnsErr):
		return nil, usagef("invalid --%s %q: %v", flagMetrics, addr, dnsErr)
	case errors.Is(err, syscall.EACCES):
		return nil, usagef("--%s %s: permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)", flagMetrics, addr)
	}
	return nil, fmt.Errorf("--%s %s: %w", flagMetrics, addr, err)
}

// startMetrics serves m on addr at /metrics until ctx ends or stop is
// called. Errors are as listenMetrics returns them; accept errors while
// serving (out of file descriptors) are retried and logged to stderr.
func startMetrics(ctx context.Context, addr string, m *metrics.Registry) (stop func(), err error) {
	ln, err := listenMetrics(addr)
	if err != nil {
		return nil, err
	}
	return httpserve.Serve(ctx, ln, m.Handler(), os.Stderr), nil
}
