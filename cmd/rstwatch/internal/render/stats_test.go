package render

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
)

// fixedRows is the input of the rendering tests.
func fixedRows(t *testing.T) (time.Time, []counters.Row) {
	t.Helper()
	now := time.Date(2026, 11, 21, 17, 40, 21, 761841090, time.UTC)
	prev := proc.Counters{"Tcp.AttemptFails": 7, "Tcp.OutRsts": 1, "TcpExt.ListenOverflows": 1234567, "TcpExt.TCPSynRetrans": 0}
	cur := proc.Counters{"Tcp.AttemptFails": 12, "Tcp.OutRsts": 3, "TcpExt.ListenOverflows": 1234567, "TcpExt.TCPSynRetrans": 1}
	return now, counters.Rows(nil, prev, cur, 1500*time.Millisecond)
}

func TestStatsText(t *testing.T) {
	now, rows := fixedRows(t)
	got := string(AppendStatsText(nil, now, 1500*time.Millisecond, rows))
	want := "" +
		"17:40:21.761  interval 1.5s\n" +
		"COUNTER            TOTAL  DELTA  RATE/s\n" +
		"AttemptFails          12      5     3.3\n" +
		"OutRsts                3      2     1.3\n" +
		"ListenOverflows  1234567      0     0.0\n" +
		"TCPSynRetrans          1      1     0.7\n"
	if got != want {
		t.Errorf("AppendStatsText:\n%s\nwant:\n%s", got, want)
	}
}

func TestStatsJSON(t *testing.T) {
	now, rows := fixedRows(t)
	r, err := counters.ParseRule("AttemptFails>2/s")
	if err != nil {
		t.Fatalf("failed to parse: %v", err)
	}
	since := now.Add(-3 * time.Second)
	events := []counters.Event{{Rule: &r, Row: rows[0], Since: since}}
	got := string(AppendStatsJSON(nil, now, 1500*time.Millisecond, rows, events))
	want := `{"time":"2026-11-21T17:40:21.761841090Z","interval_s":1.5,"counters":{` +
		`"AttemptFails":{"total":12,"delta":5,"rate":3.333},` +
		`"OutRsts":{"total":3,"delta":2,"rate":1.333},` +
		`"ListenOverflows":{"total":1234567,"delta":0,"rate":0},` +
		`"TCPSynRetrans":{"total":1,"delta":1,"rate":0.667}},` +
		`"alerts":[{"rule":"AttemptFails>2/s","counter":"AttemptFails","delta":5,"rate":3.333,` +
		`"since":"2026-11-21T17:40:18.761841090Z","meaning":"connections this host started that failed: refused (RST to a SYN) or timed out"}]}`
	if got != want {
		t.Errorf("AppendStatsJSON:\n%s\nwant:\n%s", got, want)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Errorf("AppendStatsJSON output is not JSON: %v", err)
	}
}

func TestAlertLine(t *testing.T) {
	now, rows := fixedRows(t)
	for _, tt := range []struct {
		name, expr string
		cleared    bool
		want       string
	}{
		{"rate", "AttemptFails>2/s", false,
			"ALERT AttemptFails>2/s: AttemptFails rose by 5 in 1.5s (3.3/s), holding since 17:40:18; it counts connections this host started that failed: refused (RST to a SYN) or timed out"},
		{"per_minute", "AttemptFails>100/m", false,
			"ALERT AttemptFails>100/m: AttemptFails rose by 5 in 1.5s (200.0/min), holding since 17:40:18; it counts connections this host started that failed: refused (RST to a SYN) or timed out"},
		{"cleared", "AttemptFails>9", true,
			"ALERT CLEARED AttemptFails>9: AttemptFails rose by 5 in 1.5s (3.3/s); it held from 17:40:18 to 17:40:20"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := counters.ParseRule(tt.expr)
			if err != nil {
				t.Fatalf("failed to parse: %v", err)
			}
			ev := counters.Event{Rule: &r, Row: rows[0], Since: now.Add(-3 * time.Second), Cleared: tt.cleared, End: now.Add(-1500 * time.Millisecond)}
			if got := string(AppendAlertLine(nil, &ev)); got != tt.want {
				t.Errorf("AppendAlertLine:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
