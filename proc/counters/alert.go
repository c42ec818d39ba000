package counters

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// An alert rule, as `rstwatch stats --alert` takes it:
//
//	rule  = NAME OP VALUE [UNIT]            spaces allowed between the parts
//	NAME  = a counter of Names(), case-insensitive, optionally with its
//	        file prefix: AttemptFails, attemptfails, Tcp.AttemptFails,
//	        TcpExt.ListenOverflows
//	OP    = ">" | ">=" | "<" | "<=" | "=="
//	VALUE = DIGITS [ "." DIGITS ]           non-negative decimal
//	UNIT  = "/s" (per second) | "/m" (per minute)
//
// Without a unit VALUE is compared with the counter's change over one
// interval; with one, with its rate over that interval. Examples:
// "AttemptFails>2/s", "ListenOverflows>0", "ActiveOpens < 1/m".

// Op is a comparison operator of an alert rule. The zero value is not
// valid.
//
//enumcheck:exhaustive
type Op uint8

const (
	_  Op = iota
	GT    // >
	GE    // >=
	LT    // <
	LE    // <=
	EQ    // ==
)

var opNames = [...]string{GT: ">", GE: ">=", LT: "<", LE: "<=", EQ: "=="}

func (o Op) String() string {
	if o > 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return "?"
}

// Unit says what an alert rule's value is compared with.
//
//enumcheck:exhaustive
type Unit uint8

const (
	PerInterval Unit = iota // the counter's change over one interval
	PerSecond               // its rate per second
	PerMinute               // its rate per minute
)

// Rule is one parsed alert expression.
type Rule struct {
	Text    string // canonical form, e.g. "AttemptFails>2/s"
	Counter *Info  // an element of Catalogue()
	Op      Op
	Value   float64
	Unit    Unit
}

// Syntax is the grammar in one line, for error messages.
const Syntax = "want NAME OP VALUE[/s|/m] with OP one of > >= < <= ==, e.g. 'AttemptFails>2/s' or 'ListenOverflows>0'"

// ParseRule parses one alert expression. Its errors say what is wrong in
// one line without quoting the whole expression: the caller says where it
// came from ("invalid --alert %q: %v").
func ParseRule(expr string) (Rule, error) {
	bad := func(format string, args ...any) (Rule, error) {
		return Rule{}, fmt.Errorf(format, args...)
	}
	i := strings.IndexAny(expr, "<>=")
	if i < 0 {
		return bad("%s", Syntax)
	}
	name := strings.TrimSpace(expr[:i])
	rest := expr[i:]
	var r Rule
	switch {
	case strings.HasPrefix(rest, ">="):
		r.Op, rest = GE, rest[2:]
	case strings.HasPrefix(rest, "<="):
		r.Op, rest = LE, rest[2:]
	case strings.HasPrefix(rest, "=="):
		r.Op, rest = EQ, rest[2:]
	case strings.HasPrefix(rest, ">"):
		r.Op, rest = GT, rest[1:]
	case strings.HasPrefix(rest, "<"):
		r.Op, rest = LT, rest[1:]
	default: // a lone "="
		return Rule{}, errors.New("use == to compare for equality")
	}
	if name == "" {
		return bad("no counter name before %q; %s", r.Op.String(), Syntax)
	}
	ci, ok := Find(name)
	if !ok {
		return bad("unknown counter %q (counters: %s)", name, strings.Join(Names(), ", "))
	}
	r.Counter = ci

	rest = strings.TrimSpace(rest)
	num, unit, hasUnit := strings.Cut(rest, "/")
	num = strings.TrimSpace(num)
	if hasUnit {
		switch strings.TrimSpace(unit) {
		case "s":
			r.Unit = PerSecond
		case "m":
			r.Unit = PerMinute
		default:
			return bad("unknown unit %q: want /s (per second), /m (per minute) or none (the change over one interval)", "/"+unit)
		}
	}
	if num == "" {
		return bad("no value after %q; %s", r.Op.String(), Syntax)
	}
	if !isDecimal(num) {
		return bad("value %q is not a non-negative decimal number", num)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil { // out of range
		return bad("value %q is out of range", num)
	}
	r.Value = v

	b := append([]byte(ci.Name), r.Op.String()...)
	b = strconv.AppendFloat(b, v, 'f', -1, 64)
	switch r.Unit {
	case PerSecond:
		b = append(b, "/s"...)
	case PerMinute:
		b = append(b, "/m"...)
	}
	r.Text = string(b)
	return r, nil
}

// isDecimal reports whether s is DIGITS [ "." DIGITS ].
func isDecimal(s string) bool {
	intPart, frac, hasFrac := strings.Cut(s, ".")
	return allDigits(intPart) && (!hasFrac || allDigits(frac))
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Observed is the figure r compares: the change, or the rate per second or
// per minute.
func (r *Rule) Observed(row Row) float64 {
	switch r.Unit {
	case PerSecond:
		return row.Rate
	case PerMinute:
		return row.Rate * 60
	}
	return float64(row.Delta)
}

// Holds reports whether the rule is true for row.
func (r *Rule) Holds(row Row) bool {
	x := r.Observed(row)
	switch r.Op {
	case GT:
		return x > r.Value
	case GE:
		return x >= r.Value
	case LT:
		return x < r.Value
	case LE:
		return x <= r.Value
	case EQ:
		return x == r.Value
	}
	return false
}

// State follows one rule across intervals.
type State struct {
	Rule  *Rule
	Since time.Time // start of the first interval of the current firing; zero if not firing
	Fired int       // intervals in which the rule held
}

// Event is one interval's verdict for a rule that holds or just stopped
// holding.
type Event struct {
	Rule    *Rule
	Row     Row
	Since   time.Time // when the rule started to hold
	Cleared bool      // the rule held in the previous interval and no longer does
	End     time.Time // if cleared: the end of the last interval in which it held
}

// Eval evaluates every rule on one interval's rows, ending at now, and
// appends an event for each rule that holds or has just stopped holding.
func Eval(dst []Event, states []State, rows []Row, now time.Time) []Event {
	for i := range states {
		st := &states[i]
		var row Row
		found := false
		for _, r := range rows {
			if r.Info == st.Rule.Counter {
				row, found = r, true
				break
			}
		}
		if !found {
			continue
		}
		switch {
		case st.Rule.Holds(row):
			if st.Since.IsZero() {
				st.Since = now.Add(-row.Elapsed)
			}
			st.Fired++
			dst = append(dst, Event{Rule: st.Rule, Row: row, Since: st.Since})
		case !st.Since.IsZero():
			dst = append(dst, Event{Rule: st.Rule, Row: row, Since: st.Since, Cleared: true, End: now.Add(-row.Elapsed)})
			st.Since = time.Time{}
		}
	}
	return dst
}
