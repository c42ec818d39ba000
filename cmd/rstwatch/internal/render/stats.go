package render

import (
	"math"
	"strconv"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/proc/counters"
)

// AppendStatsText appends one block: a title line with the time and the
// interval, then an aligned table.
//
//	15:04:05.000  interval 1s
//	COUNTER       TOTAL  DELTA  RATE/s
//	AttemptFails     12      3     3.0
func AppendStatsText(b []byte, now time.Time, elapsed time.Duration, rows []counters.Row) []byte {
	b = now.AppendFormat(b, "15:04:05.000")
	b = append(b, "  interval "...)
	b = append(b, elapsed.Round(time.Millisecond).String()...)
	b = append(b, '\n')
	const (
		hName, hTotal, hDelta, hRate = "COUNTER", "TOTAL", "DELTA", "RATE/s"
	)
	wName, wTotal, wDelta, wRate := len(hName), len(hTotal), len(hDelta), len(hRate)
	var num [32]byte
	for _, r := range rows {
		wName = max(wName, len(r.Info.Name))
		wTotal = max(wTotal, len(strconv.AppendUint(num[:0], r.Total, 10)))
		wDelta = max(wDelta, len(strconv.AppendUint(num[:0], r.Delta, 10)))
		wRate = max(wRate, len(strconv.AppendFloat(num[:0], r.Rate, 'f', 1, 64)))
	}
	b = appendCell(b, hName, wName, false)
	b = appendCell(b, hTotal, wTotal, true)
	b = appendCell(b, hDelta, wDelta, true)
	b = appendCell(b, hRate, wRate, true)
	b = append(b, '\n')
	for _, r := range rows {
		b = appendCell(b, r.Info.Name, wName, false)
		b = appendCell(b, string(strconv.AppendUint(num[:0], r.Total, 10)), wTotal, true)
		b = appendCell(b, string(strconv.AppendUint(num[:0], r.Delta, 10)), wDelta, true)
		b = appendCell(b, string(strconv.AppendFloat(num[:0], r.Rate, 'f', 1, 64)), wRate, true)
		b = append(b, '\n')
	}
	return b
}

// appendCell appends s padded to width w, right-aligned if right, with two
// spaces before every cell but the first in a line. s must be printable
// ASCII or already escaped (safe.AppendText).
func appendCell(b []byte, s string, w int, right bool) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, "  "...)
	}
	pad := w - len(s)
	if right {
		b = appendSpaces(b, pad)
		return append(b, s...)
	}
	b = append(b, s...)
	return appendSpaces(b, pad)
}

func appendSpaces(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, ' ')
	}
	return b
}

// AppendStatsJSON appends one interval as a JSON object without the
// newline:
//
//	{"time":"2026-11-21T17:40:21.761841090Z","interval_s":1,"counters":{"AttemptFails":{"total":12,"delta":3,"rate":3},...},"alerts":[]}
//
// rate is per second, rounded to 3 decimals. Each alert is
// {"rule","counter","delta","rate","since","meaning"}; "cleared":true marks
// a rule that stopped holding in this interval.
func AppendStatsJSON(b []byte, now time.Time, elapsed time.Duration, rows []counters.Row, events []counters.Event) []byte {
	b = append(b, `{"time":"`...)
	b = appendJSONTime(b, now)
	b = append(b, `","interval_s":`...)
	b = appendRounded(b, elapsed.Seconds())
	b = append(b, `,"counters":{`...)
	for i, r := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = safe.AppendJSON(b, r.Info.Name)
		b = append(b, `:{"total":`...)
		b = strconv.AppendUint(b, r.Total, 10)
		b = append(b, `,"delta":`...)
		b = strconv.AppendUint(b, r.Delta, 10)
		b = append(b, `,"rate":`...)
		b = appendRounded(b, r.Rate)
		b = append(b, '}')
	}
	b = append(b, `},"alerts":[`...)
	for i := range events {
		ev := &events[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"rule":`...)
		b = safe.AppendJSON(b, ev.Rule.Text)
		b = append(b, `,"counter":`...)
		b = safe.AppendJSON(b, ev.Row.Info.Name)
		b = append(b, `,"delta":`...)
		b = strconv.AppendUint(b, ev.Row.Delta, 10)
		b = append(b, `,"rate":`...)
		b = appendRounded(b, ev.Row.Rate)
		b = append(b, `,"since":"`...)
		b = appendJSONTime(b, ev.Since)
		b = append(b, `","meaning":`...)
		b = safe.AppendJSON(b, ev.Row.Info.Meaning)
		if ev.Cleared {
			b = append(b, `,"cleared":true`...)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendRounded appends f rounded to 3 decimals as a JSON number.
func appendRounded(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, '0')
	}
	return strconv.AppendFloat(b, math.Round(f*1000)/1000, 'f', -1, 64)
}

// AppendAlertLine appends ev in plain words, without a newline:
//
//	ALERT AttemptFails>2/s: AttemptFails rose by 5 in 500ms (10.0/s), holding since 15:04:05; it counts connections this host started that failed: ...
//	ALERT CLEARED AttemptFails>2/s: AttemptFails rose by 0 in 500ms (0.0/s); it held from 15:04:05 to 15:04:07
func AppendAlertLine(b []byte, ev *counters.Event) []byte {
	if ev.Cleared {
		b = append(b, "ALERT CLEARED "...)
	} else {
		b = append(b, "ALERT "...)
	}
	b = append(b, ev.Rule.Text...)
	b = append(b, ": "...)
	b = append(b, ev.Row.Info.Name...)
	b = append(b, " rose by "...)
	b = strconv.AppendUint(b, ev.Row.Delta, 10)
	b = append(b, " in "...)
	b = append(b, ev.Row.Elapsed.Round(time.Millisecond).String()...)
	b = append(b, " ("...)
	if ev.Rule.Unit == counters.PerMinute {
		b = strconv.AppendFloat(b, ev.Row.Rate*60, 'f', 1, 64)
		b = append(b, "/min)"...)
	} else {
		b = strconv.AppendFloat(b, ev.Row.Rate, 'f', 1, 64)
		b = append(b, "/s)"...)
	}
	if ev.Cleared {
		b = append(b, "; it held from "...)
		b = ev.Since.AppendFormat(b, time.TimeOnly)
		b = append(b, " to "...)
		return ev.End.AppendFormat(b, time.TimeOnly)
	}
	b = append(b, ", holding since "...)
	b = ev.Since.AppendFormat(b, time.TimeOnly)
	b = append(b, "; it counts "...)
	return append(b, ev.Row.Info.Meaning...)
}
