package render

import "time"

// appendJSONTime appends t as JSONTime in UTC, as
// t.UTC().AppendFormat(b, JSONTime) does, in a quarter of the time: every
// JSON line starts with it, and the general formatter parses the layout
// each call (40% of a line's cost in a storm).
func appendJSONTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, JSONTime)
	}
	hour, minute, sec := t.Clock()
	ns := t.Nanosecond()
	b = append2(b, year/100)
	b = append2(b, year%100)
	b = append(b, '-')
	b = append2(b, int(month))
	b = append(b, '-')
	b = append2(b, day)
	b = append(b, 'T')
	b = append2(b, hour)
	b = append(b, ':')
	b = append2(b, minute)
	b = append(b, ':')
	b = append2(b, sec)
	return appendFraction(b, ns)
}

// appendFraction appends the end of a JSONTime: the nanoseconds ns, all
// nine digits, after the point, and the Z.
func appendFraction(b []byte, ns int) []byte {
	b = append(b, '.')
	b = append2(b, ns/10000000)
	b = append2(b, ns/100000%100)
	b = append2(b, ns/1000%100)
	b = append2(b, ns/10%100)
	return append(b, byte('0'+ns%10), 'Z')
}

// digitPairs holds "00" to "99".
const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// append2 appends 0 <= v < 100 as two digits.
func append2(b []byte, v int) []byte {
	return append(b, digitPairs[2*v], digitPairs[2*v+1])
}
