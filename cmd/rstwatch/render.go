package main

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

const (
	textTime = "15:04:05.000000"
	jsonTime = "2006-01-02T15:04:05.000000000Z07:00" // RFC 3339 with nanoseconds
)

// appendText appends e as one tcpdump-style line without the newline:
//
//	15:13:13.476095 lo local 127.0.0.1.7211 > 127.0.0.1.41838: Flags [R.], seq 0, ack 2154306035, win 0, length 0
func appendText(b []byte, e *sniff.Event, v *explain.Verdict, ns *nsTarget) []byte {
	b = e.Time.AppendFormat(b, textTime)
	b = append(b, ' ')
	if ns != nil {
		// Watching other namespaces: say which one this came from.
		b = append(b, '[')
		b = appendSafe(b, ns.name)
		b = append(b, "] "...)
	}
	if e.Ifname == "" {
		b = append(b, '-') // a capture file that names no interface
	} else {
		b = appendSafe(b, e.Ifname)
	}
	b = append(b, ' ')
	b = append(b, e.Direction.String()...)
	b = append(b, ' ')
	b = appendEndpoint(b, e.Src.Addr().AppendTo, e.Src.Port())
	b = append(b, " > "...)
	b = appendEndpoint(b, e.Dst.Addr().AppendTo, e.Dst.Port())
	b = append(b, ": Flags ["...)
	b = e.Flags.AppendTo(b)
	b = append(b, "], seq "...)
	b = strconv.AppendUint(b, uint64(e.Seq), 10)
	if e.PayloadLen > 0 {
		// tcpdump prints the sequence range a segment with data covers.
		b = append(b, ':')
		b = strconv.AppendUint(b, uint64(e.Seq+uint32(e.PayloadLen)), 10)
	}
	if e.Flags.Has(sniff.FlagACK) {
		b = append(b, ", ack "...)
		b = strconv.AppendUint(b, uint64(e.Ack), 10)
	}
	b = append(b, ", win "...)
	b = strconv.AppendUint(b, uint64(e.Window), 10)
	b = append(b, ", length "...)
	b = strconv.AppendInt(b, int64(e.PayloadLen), 10)
	if r := sniff.Reason(e.Payload); r != "" {
		b = append(b, " ["...)
		b = appendSafe(b, r)
		b = append(b, ']')
	}
	return appendVerdictText(b, e, v)
}

// appendEndpoint writes addr.port as tcpdump does (also for IPv6).
func appendEndpoint(b []byte, addr func([]byte) []byte, port uint16) []byte {
	b = addr(b)
	b = append(b, '.')
	return strconv.AppendUint(b, uint64(port), 10)
}

// appendJSON appends e as one JSON object without the newline. The field
// names are a contract (issue 1/6): add fields, never rename or drop them.
func appendJSON(b []byte, e *sniff.Event, v *explain.Verdict, ns *nsTarget) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.UTC().AppendFormat(b, jsonTime)
	b = append(b, `","ifname":`...)
	b = appendJSONString(b, e.Ifname)
	b = append(b, `,"ifindex":`...)
	b = strconv.AppendInt(b, int64(e.Ifindex), 10)
	b = append(b, `,"direction":"`...)
	b = append(b, e.Direction.String()...)
	b = append(b, `","family":"`...)
	b = append(b, e.Family.String()...)
	b = append(b, `","src":"`...)
	b = e.Src.Addr().AppendTo(b)
	b = append(b, `","src_port":`...)
	b = strconv.AppendUint(b, uint64(e.Src.Port()), 10)
	b = append(b, `,"dst":"`...)
	b = e.Dst.Addr().AppendTo(b)
	b = append(b, `","dst_port":`...)
	b = strconv.AppendUint(b, uint64(e.Dst.Port()), 10)
	b = append(b, `,"flags":"`...)
	b = e.Flags.AppendTo(b)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, uint64(e.Seq), 10)
	b = append(b, `,"ack":`...)
	b = strconv.AppendUint(b, uint64(e.Ack), 10)
	b = append(b, `,"window":`...)
	b = strconv.AppendUint(b, uint64(e.Window), 10)
	b = append(b, `,"payload_len":`...)
	b = strconv.AppendInt(b, int64(e.PayloadLen), 10)
	b = append(b, `,"ttl":`...)
	b = strconv.AppendUint(b, uint64(e.TTL), 10)
	b = append(b, `,"tos":`...)
	b = strconv.AppendUint(b, uint64(e.TOS), 10)
	b = append(b, `,"reason":`...)
	if r := sniff.Reason(e.Payload); r != "" {
		b = appendJSONString(b, r)
	} else {
		b = append(b, "null"...)
	}
	b = appendVerdictJSON(b, v)
	if ns != nil {
		b = append(b, `,"netns":{"inode":`...)
		b = strconv.AppendUint(b, ns.inode, 10)
		b = append(b, `,"name":`...)
		b = appendJSONString(b, ns.name)
		b = append(b, '}')
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Control characters, quotes
// and backslashes are escaped, and so are U+2028/U+2029 and the DEL and C1
// controls, so the result is safe in a terminal too; invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r < 0xa0 || !strconv.IsPrint(r):
			// C1 controls, U+2028/U+2029 (which end lines in JavaScript),
			// bidi overrides and other invisible runes: escaped, so a
			// JSON line shown in a terminal cannot deceive.
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				b = appendU4(b, r1)
				b = appendU4(b, r2)
			} else {
				b = appendU4(b, r)
			}
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// appendU4 appends a JSON \uXXXX escape.
func appendU4(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// appendSafe appends s for a terminal: printable text as is, everything
// else (control characters, escape sequences, invalid UTF-8, backslash) as
// Go-style escapes, so a hostile process name cannot move the cursor or
// change colours.
func appendSafe(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == '\\':
			b = append(b, '\\', '\\')
		case r == utf8.RuneError && size == 1, r < 0x20, r >= 0x7f && r < 0xa0:
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			size = 1
		case !strconv.IsPrint(r):
			// Bidi overrides, zero-width and other invisible runes.
			b = append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
			if r > 0xffff {
				b = append(b[:len(b)-6], '\\', 'U', '0', '0', hexDigits[r>>20&0xf], hexDigits[r>>16&0xf], hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
			}
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}
