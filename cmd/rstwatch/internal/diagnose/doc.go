// Package diagnose turns what `rstwatch diagnose` saw into its report:
// resets with their verdicts and the handshakes around them (grouped by
// cause and service: the server end of the connections, then the sending
// program), samples of the listeners' accept queues, the namespace's
// settings and the kernel's counters at the start and the end of one
// window become ranked findings with the next step to take, notes for the
// resets that are expected (a client closing a completed exchange), what
// the resets do not explain, and a headline that says whether the failures
// are new. Each sentence of the text rests on a field of the JSON report.
// It renders the report as text and as JSON, and draws the live progress
// line.
//
// A Diagnosis does no I/O, so tests feed it sniff.Event and
// explain.Verdict fixtures and check the report without root or capture.
// It lives under cmd/rstwatch/internal because the report, its words and
// its JSON field names are the command's output; the command's action
// (flags, session, exit codes) stays in cmd/rstwatch.
package diagnose
