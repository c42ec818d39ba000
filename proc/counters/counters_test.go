package counters

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc"
)

func TestParseRule(t *testing.T) {
	for _, tt := range []struct {
		name, expr string
		want       string // canonical text
		unit       Unit
		op         Op
		value      float64
	}{
		{"rate_per_second", "AttemptFails>2/s", "AttemptFails>2/s", PerSecond, GT, 2},
		{"bare_delta", "ListenOverflows>0", "ListenOverflows>0", PerInterval, GT, 0},
		{"per_minute", "ActiveOpens<1/m", "ActiveOpens<1/m", PerMinute, LT, 1},
		{"lower_case", "attemptfails>=3", "AttemptFails>=3", PerInterval, GE, 3},
		{"tcp_prefix", "Tcp.OutRsts<=10/s", "OutRsts<=10/s", PerSecond, LE, 10},
		{"tcpext_prefix_any_case", "tcpext.listendrops==0", "ListenDrops==0", PerInterval, EQ, 0},
		{"spaces", "  EstabResets  >  0.5 / s ", "EstabResets>0.5/s", PerSecond, GT, 0.5},
		{"decimal", "TCPAbortOnData>1.25", "TCPAbortOnData>1.25", PerInterval, GT, 1.25},
		{"leading_zeros", "InErrs>007", "InErrs>7", PerInterval, GT, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRule(tt.expr)
			if err != nil {
				t.Fatalf("failed to parse %q: %v", tt.expr, err)
			}
			if r.Text != tt.want || r.Unit != tt.unit || r.Op != tt.op || r.Value != tt.value {
				t.Errorf("ParseRule(%q) = {%q unit %d op %v value %v}, want {%q unit %d op %v value %v}",
					tt.expr, r.Text, r.Unit, r.Op, r.Value, tt.want, tt.unit, tt.op, tt.value)
			}
			if r.Counter == nil || !strings.HasPrefix(tt.want, r.Counter.Name+r.Op.String()) {
				t.Errorf("ParseRule(%q) counter = %v", tt.expr, r.Counter)
			}
		})
	}
}

func TestParseRuleErrors(t *testing.T) {
	for _, tt := range []struct{ name, expr, want string }{
		{"empty", "", `want NAME OP VALUE[/s|/m]`},
		{"no_operator", "AttemptFails", `want NAME OP VALUE[/s|/m]`},
		{"single_equals", "AttemptFails=2", "use == to compare for equality"},
		{"no_name", ">2", `no counter name before ">"`},
		{"no_value", "AttemptFails>", `no value after ">"`},
		{"no_value_with_unit", "AttemptFails>/s", `no value after ">"`},
		{"unknown_counter", "Resets>1", `unknown counter "Resets" (counters: AttemptFails, EstabResets, OutRsts,`},
		{"wrong_prefix", "TcpExt.AttemptFails>1", `unknown counter "TcpExt.AttemptFails"`},
		{"unknown_unit", "AttemptFails>2/h", `unknown unit "/h": want /s (per second), /m (per minute)`},
		{"negative", "AttemptFails>-1", `value "-1" is not a non-negative decimal number`},
		{"exponent", "AttemptFails>1e3", `value "1e3" is not a non-negative decimal number`},
		{"inf", "AttemptFails<inf", `value "inf" is not a non-negative decimal number`},
		{"hex", "AttemptFails>0x10", `value "0x10" is not a non-negative decimal number`},
		{"double_operator", "AttemptFails>>2", `value ">2" is not a non-negative decimal number`},
		{"trailing_dot", "AttemptFails>2.", `value "2." is not a non-negative decimal number`},
		{"two_units", "AttemptFails>2/s/s", `unknown unit "/s/s"`},
		{"out_of_range", "AttemptFails>1" + strings.Repeat("0", 400), "is out of range"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRule(tt.expr)
			if err == nil {
				t.Fatalf("ParseRule(%q) succeeded, want an error", tt.expr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseRule(%q) error %q lacks %q", tt.expr, err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("ParseRule(%q) error has a newline: %q", tt.expr, err)
			}
		})
	}
}

func TestRuleHolds(t *testing.T) {
	row := Row{Info: &catalogue[0], Delta: 5, Rate: 10, Elapsed: 500 * time.Millisecond}
	for _, tt := range []struct {
		expr string
		want bool
	}{
		{"AttemptFails>9/s", true},
		{"AttemptFails>10/s", false},
		{"AttemptFails>=10/s", true},
		{"AttemptFails==10/s", true},
		{"AttemptFails<10/s", false},
		{"AttemptFails<=10/s", true},
		{"AttemptFails>599/m", true},
		{"AttemptFails>600/m", false},
		{"AttemptFails>4", true},
		{"AttemptFails>5", false},
		{"AttemptFails==5", true},
		{"AttemptFails<5.5", true},
	} {
		r, err := ParseRule(tt.expr)
		if err != nil {
			t.Fatalf("failed to parse %q: %v", tt.expr, err)
		}
		if got := r.Holds(row); got != tt.want {
			t.Errorf("%s on delta 5 over 500ms = %t, want %t", tt.expr, got, tt.want)
		}
	}
}

func TestCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, ci := range Catalogue() {
		prefix, name, ok := strings.Cut(ci.Key, ".")
		if !ok || (prefix != "Tcp" && prefix != "TcpExt") || name != ci.Name {
			t.Errorf("counter %q: key %q does not match", ci.Name, ci.Key)
		}
		if !strings.HasPrefix(ci.Metric, "rstwatch_tcp_") || !strings.HasSuffix(ci.Metric, "_total") || strings.Contains(ci.Metric, "tcp_tcp") {
			t.Errorf("counter %q: metric name %q", ci.Name, ci.Metric)
		}
		if seen[ci.Metric] || seen[strings.ToLower(ci.Name)] {
			t.Errorf("counter %q: duplicate name or metric", ci.Name)
		}
		seen[ci.Metric], seen[strings.ToLower(ci.Name)] = true, true
		if ci.Meaning == "" || Meaning(ci.Key) != ci.Meaning || Meaning(strings.ToUpper(ci.Name)) != ci.Meaning {
			t.Errorf("counter %q: Meaning does not find its meaning", ci.Name)
		}
	}
	if got := Meaning("NoSuchCounter"); got != "" {
		t.Errorf("Meaning(unknown) = %q, want \"\"", got)
	}
	if got := Meaning("ListenOverflows"); !strings.Contains(got, "accept queue was full") {
		t.Errorf("Meaning(ListenOverflows) = %q", got)
	}
	if names := Names(); len(names) != 16 || names[0] != "AttemptFails" || names[15] != "TCPTimeouts" {
		t.Errorf("Names() = %v", names)
	}
}

func TestRead(t *testing.T) {
	fs, err := proc.NewFS("")
	if err != nil {
		t.Fatalf("failed to open /proc: %v", err)
	}
	c, err := Read(fs)
	if err != nil {
		t.Fatalf("failed to read counters: %v", err)
	}
	for _, k := range []string{"Tcp.AttemptFails", "Tcp.OutRsts", "TcpExt.ListenOverflows"} {
		if _, ok := c[k]; !ok {
			t.Errorf("Read lacks %s: %v", k, c)
		}
	}
	for k := range c {
		if _, ok := Find(k); !ok {
			t.Errorf("Read returned %s, which is not in the catalogue", k)
		}
	}
}

func TestReadFromNone(t *testing.T) {
	_, err := ReadFrom(func() (proc.Counters, error) { return proc.Counters{"Ip.Forwarding": 1}, nil })
	if err == nil || !strings.Contains(err.Error(), "no TCP counters") {
		t.Errorf("ReadFrom without TCP counters: error %v", err)
	}
}

func TestRows(t *testing.T) {
	prev := proc.Counters{"Tcp.AttemptFails": 10, "Tcp.OutRsts": 100, "TcpExt.ListenOverflows": 7, "Tcp.InErrs": 5}
	cur := proc.Counters{"Tcp.AttemptFails": 15, "Tcp.OutRsts": 100, "TcpExt.ListenOverflows": 3, "TcpExt.TCPTimeouts": 9}
	rows := Rows(nil, prev, cur, 500*time.Millisecond)
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %d %d %g", r.Info.Name, r.Total, r.Delta, r.Rate))
	}
	// InErrs is not in cur, TCPTimeouts not in prev: both omitted.
	// ListenOverflows went backwards (namespace recreated): counted from 0.
	want := []string{"AttemptFails 15 5 10", "OutRsts 100 0 0", "ListenOverflows 3 3 6"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("Rows = %q, want %q", got, want)
	}
}

// TestEval follows one rule over four intervals: it fires, holds, clears,
// and stays quiet.
func TestEval(t *testing.T) {
	r, err := ParseRule("AttemptFails>2/s")
	if err != nil {
		t.Fatalf("failed to parse: %v", err)
	}
	states := []State{{Rule: &r}}
	t0 := time.Date(2026, 11, 21, 17, 40, 20, 0, time.UTC)
	var got []string
	for i, delta := range []uint64{3, 5, 0, 0} {
		now := t0.Add(time.Duration(i+1) * time.Second)
		rows := []Row{{Info: r.Counter, Delta: delta, Rate: float64(delta), Elapsed: time.Second}}
		for _, ev := range Eval(nil, states, rows, now) {
			got = append(got, fmt.Sprintf("%d:%s since=%s cleared=%t end=%s", i, ev.Rule.Text,
				ev.Since.Format(time.TimeOnly), ev.Cleared, ev.End.Format(time.TimeOnly)))
		}
	}
	want := []string{
		"0:AttemptFails>2/s since=17:40:20 cleared=false end=00:00:00",
		"1:AttemptFails>2/s since=17:40:20 cleared=false end=00:00:00",
		"2:AttemptFails>2/s since=17:40:20 cleared=true end=17:40:22",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Eval:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if states[0].Fired != 2 || !states[0].Since.IsZero() {
		t.Errorf("state after the run = %+v, want fired 2, not firing", states[0])
	}
	// A rule whose counter is not in the rows says nothing.
	if evs := Eval(nil, states, nil, t0); len(evs) != 0 {
		t.Errorf("Eval without rows = %v", evs)
	}
}
