// Command rstwatch finds failed TCP connections and the resets behind them.
//
// It watches every interface at once (loopback included, IPv4 and IPv6),
// decodes each TCP reset and prints it as a line or as JSON. Run
// `rstwatch --help` for the commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp(os.Stdout, os.Stderr).RunContext(ctx, defaultCommand(os.Args))
	stop()
	if err != nil && err.Error() != "" {
		fmt.Fprintf(os.Stderr, "rstwatch: %v\n", err)
	}
	os.Exit(exitCode(err))
}
