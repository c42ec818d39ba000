package safe

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// class is what the classifier says about one rune of a string.
type class uint8

const (
	// plain runes are written as they are: printable ASCII other than
	// '\\' and '"', and printable non-ASCII runes.
	plain class = iota
	// quote is '"', backslash is '\\': printable, but each format has its
	// own way to write them.
	quote
	backslash
	// control is a C0 control, DEL or a C1 control (U+0080-U+009F).
	control
	// invalid is one byte that does not start valid UTF-8.
	invalid
	// invisible is a valid rune strconv.IsPrint rejects: bidi overrides
	// and isolates, zero-width runes, U+2028/U+2029, unassigned code
	// points.
	invisible
)

// next classifies the rune that starts s[i:] and returns it with its
// length in bytes (1 for an invalid byte, whose r is its byte value).
func next(s string, i int) (r rune, size int, c class) {
	b := s[i]
	if b < utf8.RuneSelf {
		switch {
		case b == '"':
			return rune(b), 1, quote
		case b == '\\':
			return rune(b), 1, backslash
		case b < 0x20 || b == 0x7f:
			return rune(b), 1, control
		}
		return rune(b), 1, plain
	}
	r, size = utf8.DecodeRuneInString(s[i:])
	switch {
	case r == utf8.RuneError && size == 1:
		return rune(b), 1, invalid
	case r < 0xa0:
		return r, size, control
	case !strconv.IsPrint(r):
		return r, size, invisible
	}
	return r, size, plain
}

const hexDigits = "0123456789abcdef"

// AppendText appends s for a terminal: printable text as it is, everything
// else as Go-style escapes, so that a hostile process name cannot move the
// cursor, change colours or reorder what follows it: a backslash becomes
// \\, a control character or a byte of invalid UTF-8 \xNN (C1 controls
// byte by byte), an invisible rune \uNNNN or \UNNNNNNNN. A double quote is
// written as it is.
func AppendText(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		r, size, c := next(s, i)
		switch c {
		case plain, quote:
			b = append(b, s[i:i+size]...)
		case backslash:
			b = append(b, '\\', '\\')
		case control, invalid:
			for j := i; j < i+size; j++ {
				b = append(b, '\\', 'x', hexDigits[s[j]>>4], hexDigits[s[j]&0xf])
			}
		case invisible:
			if r > 0xffff {
				b = append(b, '\\', 'U', '0', '0', hexDigits[r>>20&0xf], hexDigits[r>>16&0xf], hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
			} else {
				b = appendU4(b, r)
			}
		}
		i += size
	}
	return b
}

// Text returns s escaped as AppendText escapes it.
func Text(s string) string {
	for i := 0; i < len(s); {
		_, size, c := next(s, i)
		if c != plain && c != quote {
			return string(AppendText(make([]byte, 0, len(s)+16), s))
		}
		i += size
	}
	return s
}

// AppendJSON appends s as a JSON string, quotes included. Quotes and
// backslashes are escaped as JSON requires, \n \t \r by their short forms,
// other controls and invisible runes as \uXXXX (a surrogate pair above
// U+FFFF), and a byte of invalid UTF-8 as \ufffd, so the result is valid
// JSON and also safe on a terminal.
func AppendJSON(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		r, size, c := next(s, i)
		switch c {
		case plain:
			b = append(b, s[i:i+size]...)
		case quote, backslash:
			b = append(b, '\\', s[i])
		case control:
			switch r {
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = appendU4(b, r)
			}
		case invalid:
			b = append(b, `\ufffd`...)
		case invisible:
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				b = appendU4(b, r1)
				b = appendU4(b, r2)
			} else {
				b = appendU4(b, r)
			}
		}
		i += size
	}
	return append(b, '"')
}

// appendU4 appends a \uXXXX escape.
func appendU4(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// AppendLabel appends s as a quoted Prometheus label value (text format
// 0.0.4). That format can escape only a backslash, a double quote and a
// newline (\\ \" \n), so any other rune AppendText would escape is
// written as AppendText's escape with its backslash doubled: what a
// scraper reads back is terminal-safe, e.g. \x1b for ESC.
func AppendLabel(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		_, size, c := next(s, i)
		switch {
		case c == plain:
			b = append(b, s[i:i+size]...)
		case c == quote, c == backslash:
			b = append(b, '\\', s[i])
		case s[i] == '\n':
			b = append(b, '\\', 'n')
		default:
			var tmp [16]byte // the longest escape of one rune: 4 × \xNN
			for _, e := range AppendText(tmp[:0], s[i:i+size]) {
				if e == '\\' {
					b = append(b, '\\')
				}
				b = append(b, e)
			}
		}
		i += size
	}
	return append(b, '"')
}

// String is a string that encoding/json writes through AppendJSON, for
// the fields of a document encoded with encoding/json that may carry
// outside text: encoding/json itself writes C1 controls and bidi runes
// raw.
type String string

// MarshalJSON implements json.Marshaler.
func (s String) MarshalJSON() ([]byte, error) {
	return AppendJSON(nil, string(s)), nil
}
