package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/sniff"
)

// durationValue is a duration flag that tells a user who wrote a bare
// number, as for tcpdump's -G or ss, what to write instead.
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return fmt.Errorf("add a unit: %ss", s)
		}
		return fmt.Errorf("want a duration such as 30s, 5m or 1h30m")
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }

func durationFlag(name string, value time.Duration, usage string) cli.Flag {
	v := durationValue(value)
	return &cli.GenericFlag{Name: name, Value: &v, Usage: usage}
}

// durationOf returns the value of a durationFlag.
func durationOf(c *cli.Context, name string) time.Duration {
	if v, ok := c.Generic(name).(*durationValue); ok {
		return time.Duration(*v)
	}
	return 0
}

// portsValue is a repeatable port flag that takes numbers or the service
// names of rstwatch's built-in table (sniff.PortByName): --port http,
// --port 8080,https. Ranges are checked by the command, which says which
// port is wrong.
type portsValue []int

func (p *portsValue) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if n, err := strconv.Atoi(f); err == nil {
			*p = append(*p, n)
			continue
		}
		port, ok := sniff.PortByName(strings.ToLower(f))
		if !ok {
			return fmt.Errorf("want a port number or a service name such as http, https, ssh, postgresql (rstwatch reads no /etc/services)")
		}
		*p = append(*p, int(port))
	}
	return nil
}

func (p *portsValue) String() string {
	s := make([]string, len(*p))
	for i, n := range *p {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func portsFlag(usage string) cli.Flag {
	return &cli.GenericFlag{Name: flagPort, Value: &portsValue{}, Usage: usage}
}

// portsOf returns the values of a portsFlag.
func portsOf(c *cli.Context) []int {
	if v, ok := c.Generic(flagPort).(*portsValue); ok {
		return *v
	}
	return nil
}

// numericFlag is -n, accepted for the habit of tcpdump and ss users:
// rstwatch never resolves names, so it changes nothing.
func numericFlag() cli.Flag {
	return &cli.BoolFlag{Name: "n", Usage: "accepted for tcpdump/ss habits; does nothing: rstwatch never resolves addresses, ports or users to names"}
}
