package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/metrics"
	"github.com/rstwatch/rstwatch/proc"
)

func TestListenMetricsErrors(t *testing.T) {
	for _, tt := range []struct{ name, addr, want string }{
		{"no_port", "127.0.0.1", `invalid --metrics "127.0.0.1": want HOST:PORT`},
		{"bare_port", "9464", `invalid --metrics "9464": want HOST:PORT`},
		{"empty", "", `invalid --metrics "": want HOST:PORT`},
		{"named_port", "127.0.0.1:http", `port "http" is not a number from 0 to 65535`},
		{"port_too_big", ":70000", `port "70000" is not a number from 0 to 65535`},
		{"negative_port", ":-1", `port "-1" is not a number`},
		{"too_many_colons", "::1:9464", `invalid --metrics "::1:9464": want HOST:PORT`},
		{"not_local", "192.0.2.1:9464", `invalid --metrics "192.0.2.1:9464": not an address of this host`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stop, err := startMetrics(context.Background(), tt.addr, metrics.New(proc.FS{}))
			if err == nil {
				stop()
				t.Fatalf("startMetrics(%q) succeeded", tt.addr)
			}
			if exitCode(err) != exitUsage || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("startMetrics(%q) = %v (exit %d), want a usage error with %q", tt.addr, err, exitCode(err), tt.want)
			}
		})
	}

	stop, err := startMetrics(context.Background(), "127.0.0.1:0", metrics.New(proc.FS{}))
	if err != nil {
		t.Fatalf("failed to start metrics on 127.0.0.1:0: %v", err)
	}
	stop()

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen: %v", err)
	}
	defer busy.Close()
	_, err = startMetrics(context.Background(), busy.Addr().String(), metrics.New(proc.FS{}))
	want := fmt.Sprintf("--metrics %s: address already in use", busy.Addr())
	if err == nil || !strings.Contains(err.Error(), want) || exitCode(err) != exitFailure {
		t.Errorf("startMetrics on a busy address = %v (exit %d), want %q and exit 1", err, exitCode(err), want)
	}
	var ue usageError
	if errors.As(err, &ue) {
		t.Errorf("address in use is a usage error")
	}
}

func TestMetricsFlag(t *testing.T) {
	var addr string
	app := &cli.App{
		Flags:  []cli.Flag{metricsFlag()},
		Action: func(c *cli.Context) error { addr = c.String(flagMetrics); return nil },
	}
	if err := app.Run([]string{"rstwatch", "--" + flagMetrics, "127.0.0.1:9464"}); err != nil {
		t.Fatalf("failed to parse --%s: %v", flagMetrics, err)
	}
	if addr != "127.0.0.1:9464" {
		t.Errorf("--%s = %q, want 127.0.0.1:9464", flagMetrics, addr)
	}
}
