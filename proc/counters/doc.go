// Package counters is rstwatch's catalogue of the kernel's TCP failure
// counters (which ones it reports, under which names, and what a rise of
// each usually means), reading them from a proc.FS, turning two readings
// into per-interval rows, and the --alert rule grammar with its evaluator.
//
// It lives under proc/ because these are the kernel's counters, read from
// /proc/net/snmp and /proc/net/netstat: proc parses the files, this
// package says which of their fields matter for failed connections and
// how to judge them. It knows nothing of the command line; stats,
// diagnose and the metrics registry all use it.
package counters
