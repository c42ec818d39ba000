// Package stats is the loop of the stats command: read the kernel's TCP
// counters every interval, print the rates as a table or JSON, and
// evaluate the --alert rules. The counters and rules are package
// proc/counters'; the rendering is package render's. It is the command's
// own, so it lives under cmd/rstwatch/internal.
package stats

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/render"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
)

// Run is one run of the stats command: set its fields, then call Run.
type Run struct {
	Out, ErrOut io.Writer
	JSON        bool
	Redraw      bool // stdout is a terminal: clear it before each block
	Count       int  // intervals to print; 0: until ctx ends
	Rules       []counters.Rule
	Read        func() (proc.Counters, error)
	Ticks       <-chan time.Time
}

// clearScreen moves the cursor home and clears the terminal (ECMA-48 CUP, ED).
const clearScreen = "\x1b[H\x1b[2J"

// Run prints one block or JSON object per tick until ctx ends or Count
// intervals have passed. prev was read at start. It reports whether any
// rule fired (summed up on ErrOut).
func (s *Run) Run(ctx context.Context, prev proc.Counters, start time.Time) (fired bool, err error) {
	states := make([]counters.State, len(s.Rules))
	for i := range s.Rules {
		states[i].Rule = &s.Rules[i]
	}
	var (
		rows   []counters.Row
		events []counters.Event
		buf    []byte
		ebuf   []byte
		last   = start
		n      int
	)
	for s.Count == 0 || n < s.Count {
		var now time.Time
		select {
		case <-ctx.Done():
			return s.finish(states, n)
		case now = <-s.Ticks:
		}
		cur, err := s.Read()
		if err != nil {
			return false, err
		}
		n++
		elapsed := now.Sub(last)
		rows = counters.Rows(rows[:0], prev, cur, elapsed)
		events = counters.Eval(events[:0], states, rows, now)
		buf = buf[:0]
		if s.JSON {
			buf = render.AppendStatsJSON(buf, now, elapsed, rows, events)
			buf = append(buf, '\n')
			ebuf = ebuf[:0]
			for i := range events {
				ebuf = render.AppendAlertLine(ebuf, &events[i])
				ebuf = append(ebuf, '\n')
			}
			if len(ebuf) > 0 {
				if _, err := s.ErrOut.Write(ebuf); err != nil {
					return false, fmt.Errorf("write alerts: %w", err)
				}
			}
		} else {
			if s.Redraw {
				buf = append(buf, clearScreen...)
			} else if n > 1 {
				buf = append(buf, '\n')
			}
			buf = render.AppendStatsText(buf, now, elapsed, rows)
			for i := range events {
				buf = render.AppendAlertLine(buf, &events[i])
				buf = append(buf, '\n')
			}
		}
		// One write per interval, so a block appears whole.
		if _, err := s.Out.Write(buf); err != nil {
			return false, fmt.Errorf("write output: %w", err)
		}
		prev, last = cur, now
	}
	return s.finish(states, n)
}

// finish sums up the alerts on ErrOut and reports whether any rule fired.
func (s *Run) finish(states []counters.State, intervals int) (bool, error) {
	var fired []string
	for i := range states {
		if states[i].Fired > 0 {
			fired = append(fired, fmt.Sprintf("%s (in %d of %d intervals)", states[i].Rule.Text, states[i].Fired, intervals))
		}
	}
	if len(fired) == 0 {
		return false, nil
	}
	rule := "rule"
	if len(fired) > 1 {
		rule = "rules"
	}
	fmt.Fprintf(s.ErrOut, "%d alert %s fired: %s\n", len(fired), rule, strings.Join(fired, ", "))
	return true, nil
}
