package main

import (
	"strconv"
	"strings"
	"time"
)

// An alert rule, as `rstwatch stats --alert` takes it:
//
//	rule  = NAME OP VALUE [UNIT]            spaces allowed between the parts
//	NAME  = a counter of counterNames(), case-insensitive, optionally with its
//	        file prefix: AttemptFails, attemptfails, Tcp.AttemptFails,
//	        TcpExt.ListenOverflows
//	OP    = ">" | ">=" | "<" | "<=" | "=="
//	VALUE = DIGITS [ "." DIGITS ]           non-negative decimal
//	UNIT  = "/s" (per second) | "/m" (per minute)
//
// Without a unit VALUE is compared with the counter's change over one
// interval; with one, with its rate over that interval. Examples:
// "AttemptFails>2/s", "ListenOverflows>0", "ActiveOpens < 1/m".

// alertOp is a comparison operator of an alert rule. The zero value is not
// valid.
//
//enumcheck:exhaustive
type alertOp uint8

const (
	_ alertOp = iota
	opGT
	opGE
	opLT
	opLE
	opEQ
)

var alertOpNames = [...]string{opGT: ">", opGE: ">=", opLT: "<", opLE: "<=", opEQ: "=="}

func (o alertOp) String() string {
	if o > 0 && int(o) < len(alertOpNames) {
		return alertOpNames[o]
	}
	return "?"
}

// alertUnit says what an alert rule's value is compared with.
//
//enumcheck:exhaustive
type alertUnit uint8

const (
	perInterval alertUnit = iota // the counter's change over one interval
	perSecond                    // its rate per second
	perMinute                    // its rate per minute
)

// alertRule is one parsed --alert expression.
type alertRule struct {
	text    string       // canonical form, e.g. "AttemptFails>2/s"
	counter *counterInfo // an element of tcpCounters
	op      alertOp
	value   float64
	unit    alertUnit
}

// alertSyntax is the grammar in one line, for error messages.
const alertSyntax = "want NAME OP VALUE[/s|/m] with OP one of > >= < <= ==, e.g. 'AttemptFails>2/s' or 'ListenOverflows>0'"

// parseAlert parses one --alert expression. Its errors are usage errors
// that quote the expression.
func parseAlert(expr string) (alertRule, error) {
	bad := func(format string, args ...any) (alertRule, error) {
		return alertRule{}, usagef("invalid --%s %q: "+format, append([]any{flagAlert, expr}, args...)...)
	}
	i := strings.IndexAny(expr, "<>=")
	if i < 0 {
		return bad("%s", alertSyntax)
	}
	name := strings.TrimSpace(expr[:i])
	rest := expr[i:]
	var r alertRule
	switch {
	case strings.HasPrefix(rest, ">="):
		r.op, rest = opGE, rest[2:]
	case strings.HasPrefix(rest, "<="):
		r.op, rest = opLE, rest[2:]
	case strings.HasPrefix(rest, "=="):
		r.op, rest = opEQ, rest[2:]
	case strings.HasPrefix(rest, ">"):
		r.op, rest = opGT, rest[1:]
	case strings.HasPrefix(rest, "<"):
		r.op, rest = opLT, rest[1:]
	default: // a lone "="
		return bad("use == to compare for equality")
	}
	if name == "" {
		return bad("no counter name before %q; %s", r.op.String(), alertSyntax)
	}
	ci, ok := findCounter(name)
	if !ok {
		return bad("unknown counter %q (counters: %s)", name, strings.Join(counterNames(), ", "))
	}
	r.counter = ci

	rest = strings.TrimSpace(rest)
	num, unit, hasUnit := strings.Cut(rest, "/")
	num = strings.TrimSpace(num)
	if hasUnit {
		switch strings.TrimSpace(unit) {
		case "s":
			r.unit = perSecond
		case "m":
			r.unit = perMinute
		default:
			return bad("unknown unit %q: want /s (per second), /m (per minute) or none (the change over one interval)", "/"+unit)
		}
	}
	if num == "" {
		return bad("no value after %q; %s", r.op.String(), alertSyntax)
	}
	if !isDecimal(num) {
		return bad("value %q is not a non-negative decimal number", num)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil { // out of range
		return bad("value %q is out of range", num)
	}
	r.value = v

	b := append([]byte(ci.name), r.op.String()...)
	b = strconv.AppendFloat(b, v, 'f', -1, 64)
	switch r.unit {
	case perSecond:
		b = append(b, "/s"...)
	case perMinute:
		b = append(b, "/m"...)
	}
	r.text = string(b)
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

// parseAlerts parses every --alert expression.
func parseAlerts(exprs []string) ([]alertRule, error) {
	rules := make([]alertRule, 0, len(exprs))
	for _, e := range exprs {
		r, err := parseAlert(e)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// observed is the figure r compares: the change, or the rate per second or
// per minute.
func (r *alertRule) observed(row counterRow) float64 {
	switch r.unit {
	case perSecond:
		return row.rate
	case perMinute:
		return row.rate * 60
	}
	return float64(row.delta)
}

// holds reports whether the rule is true for row.
func (r *alertRule) holds(row counterRow) bool {
	x := r.observed(row)
	switch r.op {
	case opGT:
		return x > r.value
	case opGE:
		return x >= r.value
	case opLT:
		return x < r.value
	case opLE:
		return x <= r.value
	case opEQ:
		return x == r.value
	}
	return false
}

// alertState follows one rule across intervals.
type alertState struct {
	rule  *alertRule
	since time.Time // start of the first interval of the current firing; zero if not firing
	fired int       // intervals in which the rule held
}

// alertEvent is one interval's verdict for a rule that holds or just
// stopped holding.
type alertEvent struct {
	rule    *alertRule
	row     counterRow
	since   time.Time // when the rule started to hold
	cleared bool      // the rule held in the previous interval and no longer does
	end     time.Time // if cleared: the end of the last interval in which it held
}

// appendAlertLine appends ev in plain words, without a newline:
//
//	ALERT AttemptFails>2/s: AttemptFails rose by 5 in 500ms (10.0/s), holding since 15:04:05; it counts connections this host started that failed: ...
//	ALERT CLEARED AttemptFails>2/s: AttemptFails rose by 0 in 500ms (0.0/s); it held from 15:04:05 to 15:04:07
func appendAlertLine(b []byte, ev *alertEvent) []byte {
	if ev.cleared {
		b = append(b, "ALERT CLEARED "...)
	} else {
		b = append(b, "ALERT "...)
	}
	b = append(b, ev.rule.text...)
	b = append(b, ": "...)
	b = append(b, ev.row.info.name...)
	b = append(b, " rose by "...)
	b = strconv.AppendUint(b, ev.row.delta, 10)
	b = append(b, " in "...)
	b = append(b, ev.row.elapsed.Round(time.Millisecond).String()...)
	b = append(b, " ("...)
	if ev.rule.unit == perMinute {
		b = strconv.AppendFloat(b, ev.row.rate*60, 'f', 1, 64)
		b = append(b, "/min)"...)
	} else {
		b = strconv.AppendFloat(b, ev.row.rate, 'f', 1, 64)
		b = append(b, "/s)"...)
	}
	if ev.cleared {
		b = append(b, "; it held from "...)
		b = ev.since.AppendFormat(b, time.TimeOnly)
		b = append(b, " to "...)
		return ev.end.AppendFormat(b, time.TimeOnly)
	}
	b = append(b, ", holding since "...)
	b = ev.since.AppendFormat(b, time.TimeOnly)
	b = append(b, "; it counts "...)
	return append(b, ev.row.info.meaning...)
}
