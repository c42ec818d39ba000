// Package safe is rstwatch's one string escaper: every byte rstwatch writes
// from a string it did not make (a process name, an interface name, a
// cgroup path, a reason a peer sent) goes through it, whatever the output.
//
// One rune classifier decides what is written as is and what is escaped;
// the three formats (a terminal line, a JSON string, a Prometheus label
// value) only differ in how they spell an escape. So a name that is safe
// in one output is safe in all of them: no C0 or C1 control (U+0085
// included), no DEL, no bidi override or isolate (U+202A-U+202E,
// U+2066-U+2069), no line or paragraph separator, no other invisible rune
// and no invalid UTF-8 reaches a terminal, a log or a JSON parser raw.
//
// It lives under cmd/rstwatch/internal because it encodes the CLI's
// output contract; the libraries return plain strings and leave escaping
// to whoever prints them.
package safe
