// Package promtest parses the Prometheus text exposition format strictly,
// for the tests of the metrics registry and of the command that serves it.
package promtest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Family is one metric family of a parsed exposition.
type Family struct {
	Help, Type string
	Samples    map[string]float64 // series key (name{sorted labels}) -> value
	Labels     map[string]map[string]string
}

// Parse parses the Prometheus text format 0.0.4 strictly: HELP
// and TYPE at most once per family and before its samples, a family's
// samples contiguous, metric and label names valid, label values properly
// quoted and escaped UTF-8, values floats, no duplicate series, no
// duplicate label names, no empty lines.
func Parse(text string) (map[string]*Family, error) {
	fams := map[string]*Family{}
	family := func(name string) *Family {
		f := fams[name]
		if f == nil {
			f = &Family{Samples: map[string]float64{}, Labels: map[string]map[string]string{}}
			fams[name] = f
		}
		return f
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("exposition does not end with a newline")
	}
	var (
		current string              // family of the previous sample
		closed  = map[string]bool{} // families whose samples have ended
	)
	for n, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		errf := func(format string, args ...any) error {
			return fmt.Errorf("line %d %q: %s", n+1, line, fmt.Sprintf(format, args...))
		}
		if line == "" {
			return nil, errf("empty line")
		}
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			kw, rest, _ := strings.Cut(rest, " ")
			if kw != "HELP" && kw != "TYPE" {
				continue // a comment
			}
			name, arg, ok := strings.Cut(rest, " ")
			if !ok || !validMetricName(name) {
				return nil, errf("bad metric name in %s", kw)
			}
			f := family(name)
			if len(f.Samples) > 0 {
				return nil, errf("%s after the family's samples", kw)
			}
			switch kw {
			case "HELP":
				if f.Help != "" {
					return nil, errf("second HELP")
				}
				h, err := unescapeHelp(arg)
				if err != nil {
					return nil, errf("%v", err)
				}
				f.Help = h
			case "TYPE":
				if f.Type != "" {
					return nil, errf("second TYPE")
				}
				switch arg {
				case "counter", "gauge", "histogram", "summary", "untyped":
				default:
					return nil, errf("unknown type %q", arg)
				}
				f.Type = arg
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			return nil, errf("comment without a space after #")
		}
		name, labels, value, err := parseSample(line)
		if err != nil {
			return nil, errf("%v", err)
		}
		if name != current {
			if closed[name] {
				return nil, errf("samples of %s are not contiguous", name)
			}
			if current != "" {
				closed[current] = true
			}
			current = name
		}
		f := family(name)
		if f.Type == "" {
			return nil, errf("sample before TYPE")
		}
		keys := slices.Sorted(maps.Keys(labels))
		var key strings.Builder
		key.WriteString(name + "{")
		for _, k := range keys {
			fmt.Fprintf(&key, "%s=%q,", k, labels[k])
		}
		key.WriteString("}")
		if _, dup := f.Samples[key.String()]; dup {
			return nil, errf("duplicate series %s", key.String())
		}
		f.Samples[key.String()] = value
		f.Labels[key.String()] = labels
	}
	for name, f := range fams {
		if f.Type == "" || f.Help == "" {
			return nil, fmt.Errorf("family %s lacks HELP or TYPE", name)
		}
	}
	return fams, nil
}

func validMetricName(s string) bool {
	for i, c := range s {
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

func validLabelName(s string) bool {
	return validMetricName(s) && !strings.Contains(s, ":") && !strings.HasPrefix(s, "__")
}

func unescapeHelp(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i++; i == len(s) {
			return "", fmt.Errorf("dangling backslash in HELP")
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		default:
			return "", fmt.Errorf("bad escape \\%c in HELP", s[i])
		}
	}
	return b.String(), nil
}

// parseSample parses `name{l="v",...} value [timestamp]`.
func parseSample(line string) (string, map[string]string, float64, error) {
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return "", nil, 0, fmt.Errorf("no value")
	}
	name, rest := line[:i], line[i:]
	if !validMetricName(name) {
		return "", nil, 0, fmt.Errorf("bad metric name %q", name)
	}
	labels := map[string]string{}
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.IndexByte(rest, '=')
			if eq < 0 {
				return "", nil, 0, fmt.Errorf("label without =")
			}
			ln := rest[:eq]
			if !validLabelName(ln) {
				return "", nil, 0, fmt.Errorf("bad label name %q", ln)
			}
			if _, dup := labels[ln]; dup {
				return "", nil, 0, fmt.Errorf("duplicate label %q", ln)
			}
			rest = rest[eq+1:]
			if !strings.HasPrefix(rest, `"`) {
				return "", nil, 0, fmt.Errorf("label value of %s not quoted", ln)
			}
			rest = rest[1:]
			var v strings.Builder
			for {
				if rest == "" {
					return "", nil, 0, fmt.Errorf("unterminated label value")
				}
				c := rest[0]
				rest = rest[1:]
				if c == '"' {
					break
				}
				if c == '\n' {
					return "", nil, 0, fmt.Errorf("raw newline in label value")
				}
				if c != '\\' {
					v.WriteByte(c)
					continue
				}
				if rest == "" {
					return "", nil, 0, fmt.Errorf("dangling backslash")
				}
				switch rest[0] {
				case '\\', '"':
					v.WriteByte(rest[0])
				case 'n':
					v.WriteByte('\n')
				default:
					return "", nil, 0, fmt.Errorf("bad escape \\%c", rest[0])
				}
				rest = rest[1:]
			}
			if !utf8.ValidString(v.String()) {
				return "", nil, 0, fmt.Errorf("label value is not UTF-8")
			}
			labels[ln] = v.String()
			switch {
			case strings.HasPrefix(rest, ","):
				rest = rest[1:]
			case strings.HasPrefix(rest, "}"):
			default:
				return "", nil, 0, fmt.Errorf("want , or } after a label")
			}
		}
	}
	fields := strings.Split(strings.TrimPrefix(rest, " "), " ")
	if !strings.HasPrefix(rest, " ") || len(fields) < 1 || len(fields) > 2 {
		return "", nil, 0, fmt.Errorf("want one space, a value and an optional timestamp")
	}
	var v float64
	switch fields[0] {
	case "+Inf", "-Inf", "NaN":
	default:
		var err error
		if v, err = strconv.ParseFloat(fields[0], 64); err != nil {
			return "", nil, 0, fmt.Errorf("value %q is not a float", fields[0])
		}
	}
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return "", nil, 0, fmt.Errorf("bad timestamp %q", fields[1])
		}
	}
	return name, labels, v, nil
}
