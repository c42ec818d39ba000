package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
)

// promFamily is one metric family of a parsed exposition.
type promFamily struct {
	help, typ string
	samples   map[string]float64 // series key (name{sorted labels}) -> value
	labels    map[string]map[string]string
}

// parseExposition parses the Prometheus text format 0.0.4 strictly: HELP
// and TYPE at most once per family and before its samples, a family's
// samples contiguous, metric and label names valid, label values properly
// quoted and escaped UTF-8, values floats, no duplicate series, no
// duplicate label names, no empty lines.
func parseExposition(text string) (map[string]*promFamily, error) {
	fams := map[string]*promFamily{}
	family := func(name string) *promFamily {
		f := fams[name]
		if f == nil {
			f = &promFamily{samples: map[string]float64{}, labels: map[string]map[string]string{}}
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
			if len(f.samples) > 0 {
				return nil, errf("%s after the family's samples", kw)
			}
			switch kw {
			case "HELP":
				if f.help != "" {
					return nil, errf("second HELP")
				}
				h, err := unescapeHelp(arg)
				if err != nil {
					return nil, errf("%v", err)
				}
				f.help = h
			case "TYPE":
				if f.typ != "" {
					return nil, errf("second TYPE")
				}
				switch arg {
				case "counter", "gauge", "histogram", "summary", "untyped":
				default:
					return nil, errf("unknown type %q", arg)
				}
				f.typ = arg
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
		if f.typ == "" {
			return nil, errf("sample before TYPE")
		}
		keys := slices.Sorted(maps.Keys(labels))
		var key strings.Builder
		key.WriteString(name + "{")
		for _, k := range keys {
			fmt.Fprintf(&key, "%s=%q,", k, labels[k])
		}
		key.WriteString("}")
		if _, dup := f.samples[key.String()]; dup {
			return nil, errf("duplicate series %s", key.String())
		}
		f.samples[key.String()] = value
		f.labels[key.String()] = labels
	}
	for name, f := range fams {
		if f.typ == "" || f.help == "" {
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

func TestParseExpositionRejects(t *testing.T) {
	head := "# HELP x_total X.\n# TYPE x_total counter\n"
	for _, tt := range []struct{ name, text string }{
		{"no_type", "# HELP x_total X.\nx_total 1\n"},
		{"bad_name", head + "x-total 1\n"},
		{"bad_value", head + "x_total one\n"},
		{"duplicate_series", head + "x_total{a=\"1\"} 1\nx_total{a=\"1\"} 2\n"},
		{"unquoted_label", head + "x_total{a=1} 1\n"},
		{"bad_escape", head + "x_total{a=\"\\t\"} 1\n"},
		{"duplicate_label", head + "x_total{a=\"1\",a=\"2\"} 1\n"},
		{"second_type", head + "# TYPE x_total counter\nx_total 1\n"},
		{"not_contiguous", head + "x_total{a=\"1\"} 1\n# HELP y Y.\n# TYPE y gauge\ny 1\nx_total{a=\"2\"} 1\n"},
		{"empty_line", head + "x_total 1\n\n"},
		{"no_final_newline", head + "x_total 1"},
		{"reserved_label", head + "x_total{__a=\"1\"} 1\n"},
	} {
		if _, err := parseExposition(tt.text); err == nil {
			t.Errorf("%s: parseExposition accepted %q", tt.name, tt.text)
		}
	}
	good := head + "x_total{a=\"q\\\"b\\\\n\\n\",b=\"\"} 1.5e3\nx_total 2 1700000000000\n# a comment\n"
	fams, err := parseExposition(good)
	if err != nil {
		t.Fatalf("failed to parse a valid exposition: %v", err)
	}
	if got := fams["x_total"].samples[`x_total{a="q\"b\\n\n",b="",}`]; got != 1500 {
		t.Errorf("parsed %v", fams["x_total"].samples)
	}
}

// scrape fetches and parses the exposition at url.
func scrape(t *testing.T, url string) map[string]*promFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("failed to scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("failed to read the scrape: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("scrape: status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	fams, err := parseExposition(string(body))
	if err != nil {
		t.Fatalf("scrape is not valid exposition format: %v\n%s", err, body)
	}
	return fams
}

func TestMetricsServer(t *testing.T) {
	fs, err := proc.NewFS("")
	if err != nil {
		t.Fatalf("failed to open /proc: %v", err)
	}
	m := newMetrics(fs)
	for range 3 {
		m.observeReset("refused", "local", 7211)
	}
	m.observeReset("abort", "in", 443)
	hostile := "a\"b\\c\nd\xffe"                  // quote, backslash, newline, invalid UTF-8
	m.observeReset("ev\u202eil\u0085", "out", 80) // bidi override, C1
	m.observeReset(hostile, "out", 80)
	m.setCaptureDrops(func() uint64 { return 7 })

	ln, err := listenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := serveMetrics(ctx, ln, m)
	defer stop()
	url := "http://" + ln.Addr().String() + "/metrics"

	fams := scrape(t, url)
	resets := fams["rstwatch_resets_total"]
	if resets == nil || resets.typ != "counter" || !strings.Contains(resets.help, "port=\"other\"") {
		t.Fatalf("rstwatch_resets_total family: %+v", resets)
	}
	want := map[string]float64{
		`rstwatch_resets_total{cause="refused",direction="local",port="7211",}`:           3,
		`rstwatch_resets_total{cause="abort",direction="in",port="443",}`:                 1,
		`rstwatch_resets_total{cause="a\"b\\c\nd\\xffe",direction="out",port="80",}`:      1,
		`rstwatch_resets_total{cause="ev\\u202eil\\xc2\\x85",direction="out",port="80",}`: 1,
	}
	if !maps.Equal(resets.samples, want) {
		t.Errorf("resets series:\n%v\nwant:\n%v", resets.samples, want)
	}
	if d := fams["rstwatch_capture_drops_total"]; d == nil || d.typ != "counter" || d.samples["rstwatch_capture_drops_total{}"] != 7 {
		t.Errorf("rstwatch_capture_drops_total: %+v", d)
	}
	kernel, err := counters.Read(fs)
	if err != nil {
		t.Fatalf("failed to read counters: %v", err)
	}
	for _, ci := range counters.Catalogue() {
		f := fams[ci.Metric]
		if _, ok := kernel[ci.Key]; !ok {
			if f != nil {
				t.Errorf("%s served though the kernel lacks %s", ci.Metric, ci.Key)
			}
			continue
		}
		if f == nil || f.typ != "counter" || len(f.samples) != 1 || !strings.Contains(f.help, ci.Key) {
			t.Errorf("%s: %+v", ci.Metric, f)
		}
	}
	for name := range fams {
		if !strings.HasPrefix(name, "rstwatch_") || !strings.HasSuffix(name, "_total") {
			t.Errorf("unexpected family %s", name)
		}
	}

	// Kernel counters are read at scrape time: make this namespace's
	// AttemptFails move with a refused connect, then scrape again.
	before := fams["rstwatch_tcp_attempt_fails_total"].samples["rstwatch_tcp_attempt_fails_total{}"]
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen: %v", err)
	}
	closed := probe.Addr().String()
	probe.Close()
	if c, err := net.Dial("tcp", closed); err == nil {
		c.Close()
		t.Fatalf("connect to closed port %s succeeded", closed)
	}
	after := scrape(t, url)["rstwatch_tcp_attempt_fails_total"].samples["rstwatch_tcp_attempt_fails_total{}"]
	if after <= before {
		t.Errorf("rstwatch_tcp_attempt_fails_total %v after a refused connect, was %v", after, before)
	}

	resp, err := http.Post(url, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatalf("failed to POST: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST status %d, want 405", resp.StatusCode)
	}

	cancel() // ctx ending stops the server
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("server still accepting after its context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop() // and stop after that is harmless
}

func TestMetricsNoDropsHook(t *testing.T) {
	m := newMetrics(proc.FS{}) // no /proc: the kernel counters are left out
	body := string(m.appendExposition(nil))
	fams, err := parseExposition(body)
	if err != nil {
		t.Fatalf("invalid exposition: %v\n%s", err, body)
	}
	if _, ok := fams["rstwatch_capture_drops_total"]; ok {
		t.Errorf("capture drops served without a hook:\n%s", body)
	}
	if !strings.Contains(body, "# rstwatch: kernel counters unavailable: ") {
		t.Errorf("no note about the missing counters:\n%s", body)
	}
}

// resetSeries returns the registry's rstwatch_resets_total series by key.
func resetSeries(t *testing.T, m *metrics) map[string]float64 {
	t.Helper()
	fams, err := parseExposition(string(m.appendExposition(nil)))
	if err != nil {
		t.Fatalf("invalid exposition: %v", err)
	}
	return fams["rstwatch_resets_total"].samples
}

func TestMetricsTopPorts(t *testing.T) {
	m := newMetrics(proc.FS{})
	// A scan: one reset on each of 1000 ports fills the 20 slots with the
	// first ports seen; the rest count as "other".
	for p := range 1000 {
		m.observeReset("refused", "in", uint16(1000+p))
	}
	s1 := resetSeries(t, m)
	if len(s1) != metricsTopPorts+1 || s1[`rstwatch_resets_total{cause="refused",direction="in",port="other",}`] != 1000-metricsTopPorts {
		t.Fatalf("after the scan: %d series, other = %v", len(s1), s1[`rstwatch_resets_total{cause="refused",direction="in",port="other",}`])
	}
	// A busy port takes over a slot once it has clearly more resets than
	// the least busy labelled port.
	for range 5 {
		m.observeReset("refused", "in", 7211)
	}
	s2 := resetSeries(t, m)
	busy := `rstwatch_resets_total{cause="refused",direction="in",port="7211",}`
	if s2[busy] == 0 || len(s2) != metricsTopPorts+1 {
		t.Fatalf("busy port 7211 not labelled: %v", s2)
	}
	// Every series still served never went down.
	for k, v := range s2 {
		if old, ok := s1[k]; ok && v < old {
			t.Errorf("series %s went down from %v to %v", k, old, v)
		}
	}
	// Two ports that take turns do not swap slots on every reset.
	m2 := newMetrics(proc.FS{})
	for p := range metricsTopPorts {
		for range 100 {
			m2.observeReset("c", "d", uint16(p+1))
		}
	}
	labelled := func() string {
		var ports []string
		for k := range resetSeries(t, m2) {
			ports = append(ports, k)
		}
		slices.Sort(ports)
		return strings.Join(ports, " ")
	}
	for range 112 { // 112 = 100 + 100/8: not enough
		m2.observeReset("c", "d", 9999)
	}
	before := labelled()
	m2.observeReset("c", "d", 9999) // 113: takes the slot of port 1
	if after := labelled(); after == before || !strings.Contains(after, `port="9999"`) || strings.Contains(after, `port="1",`) {
		t.Fatalf("port 9999 did not replace port 1:\n%s", after)
	}
	swaps, last := 0, labelled()
	for i := range 1000 {
		m2.observeReset("c", "d", uint16(1+i%2*9998)) // ports 1 and 9999 in turn
		if cur := labelled(); cur != last {
			swaps, last = swaps+1, cur
		}
	}
	if swaps > 20 {
		t.Errorf("ports 1 and 9999 swapped slots %d times in 1000 resets", swaps)
	}
	if n := len(resetSeries(t, m2)); n > metricsTopPorts+1 {
		t.Errorf("%d series, want at most %d", n, metricsTopPorts+1)
	}
}

func TestMetricsMaxPairs(t *testing.T) {
	m := newMetrics(proc.FS{})
	for i := range 3 * metricsMaxPairs {
		m.observeReset(fmt.Sprintf("cause%d", i), "in", 80)
	}
	s := resetSeries(t, m)
	if len(s) != metricsMaxPairs {
		t.Errorf("%d series for %d causes, want %d", len(s), 3*metricsMaxPairs, metricsMaxPairs)
	}
	if got := s[`rstwatch_resets_total{cause="other",direction="other",port="80",}`]; got != 2*metricsMaxPairs+1 {
		t.Errorf("overflow series = %v, want %d", got, 2*metricsMaxPairs+1)
	}
}

func TestObserveResetAllocs(t *testing.T) {
	m := newMetrics(proc.FS{})
	causes := []string{"refused", "abort", "stale"}
	dirs := []string{"in", "out", "local"}
	for _, c := range causes {
		for _, d := range dirs {
			m.observeReset(c, d, 1)
		}
	}
	var i int
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		// Labelled ports, "other" ports and promotions.
		m.observeReset(causes[i%3], dirs[i/3%3], uint16(i*7919))
	})
	if allocs != 0 {
		t.Errorf("observeReset allocates %v times per call, want 0", allocs)
	}
}

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
			stop, err := startMetrics(context.Background(), tt.addr, newMetrics(proc.FS{}))
			if err == nil {
				stop()
				t.Fatalf("startMetrics(%q) succeeded", tt.addr)
			}
			if exitCode(err) != exitUsage || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("startMetrics(%q) = %v (exit %d), want a usage error with %q", tt.addr, err, exitCode(err), tt.want)
			}
		})
	}

	stop, err := startMetrics(context.Background(), "127.0.0.1:0", newMetrics(proc.FS{}))
	if err != nil {
		t.Fatalf("failed to start metrics on 127.0.0.1:0: %v", err)
	}
	stop()

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen: %v", err)
	}
	defer busy.Close()
	_, err = startMetrics(context.Background(), busy.Addr().String(), newMetrics(proc.FS{}))
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

func TestMetricsConcurrent(t *testing.T) {
	m := newMetrics(proc.FS{})
	var drops atomic.Uint64
	m.setCaptureDrops(drops.Load)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				m.observeReset("refused", "in", uint16(g*1000+i%50))
				drops.Add(1)
			}
		})
	}
	for range 20 {
		if _, err := parseExposition(string(m.appendExposition(nil))); err != nil {
			t.Fatalf("invalid exposition while observing: %v", err)
		}
	}
	wg.Wait()
	var total float64
	for _, v := range resetSeries(t, m) {
		total += v
	}
	// An evicted port's series vanish, so the series add up to at most the
	// observations, and to some of them.
	if total > 8000 || total == 0 {
		t.Errorf("series add up to %v, more than the 8000 observations", total)
	}
}
