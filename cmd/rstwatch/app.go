package main

import (
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// Flag names, shared by the commands that take them.
const (
	flagInterface     = "interface"
	flagJSON          = "json"
	flagCount         = "count"
	flagDuration      = "duration"
	flagPort          = "port"
	flagHost          = "host"
	flagWrite         = "write"
	flagPrint         = "print"
	flagPcap          = "pcap"
	flagRead          = "read"
	flagNoExplain     = "no-explain"
	flagExplainBudget = "explain-budget"
	flagNetns         = "netns"
	flagPid           = "pid"
	flagAllNetns      = "all-netns"
	flagInterval      = "interval"
	flagAlert         = "alert"
	flagMetrics       = "metrics"
	flagListening     = "listening"
)

// newApp returns the rstwatch command line application writing to stdout
// and stderr. It never exits the process itself: actions return errors and
// main maps them to exit codes, so deferred cleanup always runs.
func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:  "rstwatch",
		Usage: "find failed TCP connections and the resets behind them",
		Description: "rstwatch watches every interface at once (loopback included, IPv4 and IPv6), decodes\n" +
			"each TCP reset and prints it. With no command it runs `watch`.",
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*cli.Command{
			watchCommand(),
			diagnoseCommand(),
			statsCommand(),
			socketsCommand(),
		},
		HideHelpCommand: true,
		// Reached only for an unknown command: defaultCommand turned every
		// other command line into one that names a command.
		Action: func(c *cli.Context) error {
			var names []string
			for _, cmd := range c.App.Commands {
				names = append(names, cmd.Name)
			}
			return usagef("unknown command %q (commands: %s)", c.Args().First(), strings.Join(names, ", "))
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		// Leave exiting to main so that deferred Close calls run.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	for _, c := range app.Commands {
		if c.OnUsageError == nil {
			c.OnUsageError = app.OnUsageError
		}
	}
	return app
}

// defaultCommand inserts "watch" when args name no command, so that
// `rstwatch -i lo` means `rstwatch watch -i lo`.
func defaultCommand(args []string) []string {
	if len(args) < 2 {
		return append(args, "watch")
	}
	first := args[1]
	switch {
	case first == "-h" || first == "--help" || first == "-help" || first == "help":
		return args
	case strings.HasPrefix(first, "-"):
		return append([]string{args[0], "watch"}, args[1:]...)
	}
	return args
}
