// Package safetest holds the hostile strings and the terminal-safety check
// that the tests of every rstwatch output share, so that each output is
// tested against the same names.
package safetest

import (
	"testing"
	"unicode/utf8"
)

// Hostile are process names (and interface names, cgroup paths, ...) a
// local user can choose: comm is theirs to set with prctl(PR_SET_NAME).
var Hostile = []string{
	"nginx",
	"evil\x1b[2J\x1b[31mred",
	"tab\there\nnewline\rcr",
	"quote\"back\\slash",
	"del\x7fc1\u0085",
	"ev\u202eil\u0085",
	"bidi\u202aa\u202bb\u202cc\u202dd\u202eoverride\u200bzero",
	"iso\u2066a\u2067b\u2068c\u2069",
	"line\u2028sep\u2029",
	"bad\xff\xfeutf8",
	"nul\x00bel\x07",
	"",
}

// Unsafe reports whether r (of size bytes, as utf8.DecodeRune returned
// it) is one a terminal acts on or hides: C0 and C1 controls, DEL,
// bidi overrides and isolates, zero-width and line separators, and bytes
// of invalid UTF-8.
func Unsafe(r rune, size int) bool {
	switch {
	case r < 0x20 && r != '\n', r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200b, r == 0x2028, r == 0x2029:
		return true
	}
	return r == utf8.RuneError && size == 1
}

// AssertTerminalSafe fails t if b holds an unsafe rune. Newlines are
// allowed: they end the lines of a multi-line output; a single-line output
// checks for them itself.
func AssertTerminalSafe(t testing.TB, b []byte) {
	t.Helper()
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if Unsafe(r, size) {
			t.Fatalf("output %q has unsafe rune %U at %d", b, r, i)
		}
		i += size
	}
}

// AssertLine is AssertTerminalSafe for one line: no newline either.
func AssertLine(t testing.TB, b []byte) {
	t.Helper()
	AssertTerminalSafe(t, b)
	for i, c := range b {
		if c == '\n' {
			t.Fatalf("line %q has a newline at %d", b, i)
		}
	}
}
