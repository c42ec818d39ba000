package safe

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe/safetest"
)

func TestAppendJSON(t *testing.T) {
	for _, s := range safetest.Hostile {
		b := AppendJSON(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("AppendJSON(%q) = %s: not JSON: %v", s, b, err)
		}
		if want := perByteValid(s); got != want {
			t.Errorf("AppendJSON(%q) decodes to %q, want %q", s, got, want)
		}
		safetest.AssertLine(t, b)
	}
	for _, tt := range []struct{ in, want string }{
		{"nginx", `"nginx"`},
		{"a\"b\\c", `"a\"b\\c"`},
		{"\n\t\r\x00\x7f", `"\n\t\r\u0000\u007f"`},
		{"ev\u202eil\u0085", `"ev\u202eil\u0085"`},
		{"bad\xffx", `"bad\ufffdx"`},
		{"café", `"café"`},
		{"\U000e0001", `"\udb40\udc01"`}, // an invisible tag rune above U+FFFF
	} {
		if got := string(AppendJSON(nil, tt.in)); got != tt.want {
			t.Errorf("AppendJSON(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// perByteValid replaces each byte of invalid UTF-8 with U+FFFD, as
// encoding/json does.
func perByteValid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError for an invalid byte
		i += size
	}
	return b.String()
}

func TestAppendText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"nginx", "nginx"},
		{"evil\x1b[2Jred", `evil\x1b[2Jred`},
		{"a\\b", `a\\b`},
		{`q"q`, `q"q`},
		{"bidi\u202eo", `bidi\u202eo`},
		{"c1\u0085", `c1\xc2\x85`},
		{"bad\xffx", `bad\xffx`},
		{"café", "café"},
		{"\U000e0001", `\U000e0001`},
	} {
		if got := string(AppendText(nil, tt.in)); got != tt.want {
			t.Errorf("AppendText(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, s := range safetest.Hostile {
		safetest.AssertLine(t, AppendText(nil, s))
	}
}

func TestAppendLabel(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"refused", `"refused"`},
		{"a\"b\\c\nd", `"a\"b\\c\nd"`},
		{"evil\x1b[2J", `"evil\\x1b[2J"`},
		{"ev\u202eil\u0085", `"ev\\u202eil\\xc2\\x85"`},
		{"bad\xff", `"bad\\xff"`},
		{"café", `"café"`},
	} {
		if got := string(AppendLabel(nil, tt.in)); got != tt.want {
			t.Errorf("AppendLabel(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	for _, s := range safetest.Hostile {
		b := AppendLabel(nil, s)
		safetest.AssertLine(t, b)
		// What a scraper reads back is the terminal-safe text, newlines
		// aside (the format has its own escape for them).
		got, ok := unquoteLabel(string(b))
		if !ok {
			t.Fatalf("AppendLabel(%q) = %s: not a label value", s, b)
		}
		var want []byte
		for i := 0; i < len(s); {
			_, size := utf8.DecodeRuneInString(s[i:])
			switch s[i] {
			case '\n', '\\':
				want = append(want, s[i])
			default:
				want = AppendText(want, s[i:i+size])
			}
			i += size
		}
		if got != string(want) {
			t.Errorf("AppendLabel(%q) reads back as %q, want %q", s, got, want)
		}
	}
}

// unquoteLabel undoes the escapes of the text exposition format.
func unquoteLabel(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		switch {
		case c == '"':
			return "", false
		case c != '\\':
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case '\\', '"':
			b.WriteByte(s[i])
		case 'n':
			b.WriteByte('\n')
		default:
			return "", false
		}
	}
	return b.String(), true
}

func TestStringMarshalJSON(t *testing.T) {
	type doc struct {
		Comm  String   `json:"comm"`
		Names []String `json:"names"`
	}
	for _, s := range safetest.Hostile {
		b, err := json.MarshalIndent(doc{String(s), []String{String(s)}}, "", "  ")
		if err != nil {
			t.Fatalf("failed to marshal %q: %v", s, err)
		}
		if !json.Valid(b) {
			t.Fatalf("not JSON: %s", b)
		}
		safetest.AssertTerminalSafe(t, b)
		var got doc
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("failed to read back %s: %v", b, err)
		}
		if want := perByteValid(s); string(got.Comm) != want || string(got.Names[0]) != want {
			t.Errorf("%q reads back as %q", s, got.Comm)
		}
	}
}

func TestAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	for _, s := range safetest.Hostile {
		if n := testing.AllocsPerRun(100, func() {
			buf = AppendText(buf[:0], s)
			buf = AppendJSON(buf[:0], s)
			buf = AppendLabel(buf[:0], s)
		}); n != 0 {
			t.Errorf("escaping %q allocates %v times", s, n)
		}
	}
}

// FuzzAppendJSON checks that any string becomes valid JSON that decodes
// back to it (with invalid UTF-8 replaced), and that every format is
// terminal-safe.
func FuzzAppendJSON(f *testing.F) {
	for _, s := range safetest.Hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendJSON(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("not JSON: %v: %q", err, b)
		}
		if want := perByteValid(s); got != want {
			t.Fatalf("decoded %q from %q", got, s)
		}
		safetest.AssertLine(t, b)
		safetest.AssertLine(t, AppendText(nil, s))
		lb := AppendLabel(nil, s)
		safetest.AssertLine(t, lb)
		if _, ok := unquoteLabel(string(lb)); !ok {
			t.Fatalf("AppendLabel(%q) = %s: not a label value", s, lb)
		}
	})
}
