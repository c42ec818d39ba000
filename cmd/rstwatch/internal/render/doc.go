// Package render writes what rstwatch prints: a reset as a tcpdump-style
// line or a JSON object, the sockets table and its JSON lines, and the
// stats blocks, JSON objects and alert lines. Each function appends to a
// caller's buffer and the per-reset ones do not allocate, so the capture
// loop can print a storm without garbage.
//
// Every string that comes from outside (process and interface names,
// cgroup paths, reasons a peer sent) goes through package safe. The JSON
// field names are a contract: add fields, never rename or drop them.
//
// It lives under cmd/rstwatch/internal because these formats are the
// command's output; the libraries under sniff/ and proc/ return values and
// leave printing to their caller.
package render
