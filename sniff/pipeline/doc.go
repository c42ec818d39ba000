// Package pipeline is rstwatch's capture pipeline as a library: a source
// (the live captures of one or every network namespace, or a capture file)
// feeds decoded, deduplicated segments to the explainer, and each
// explained event to the caller's sinks (lines, JSON, a capture file, the
// metrics, a diagnosis).
//
//	sniff.Sniffer / sniff.FileReader ─► explain.Explainer ─► Sink, Sink, ...
//
// It lives under sniff/ because it is the capture's own flow; it knows no
// command line (cmd/rstwatch turns flags into a Config) and no output
// format (those are sinks). Open sets everything up, so a bad interface, a
// missing privilege or an unreadable file fails before anything runs; Run
// drives the sources, one goroutine per capture, and never overlaps sink
// calls. Sinks are flushed when a source goes idle and at least every
// FlushEvery, so nothing handled waits for the next packet to be seen.
package pipeline
