// Command rststorm is rstwatch's benchmark tool. It creates its own pair of
// network namespaces joined by a veth pair, starts a sniffer under test in
// the receiving namespace, sends a bounded storm of crafted TCP resets (or
// SYNs to closed ports, which the peer kernel answers with resets) across
// the pair, stops the sniffer and reports what was sent, what the sniffer
// captured and dropped, and its CPU time and peak memory. Its bulk command
// measures a loopback TCP transfer inside a namespace of its own, with and
// without a sniffer. No packet leaves the namespaces it creates, and it
// deletes them on exit, SIGINT included. bench.sh runs the whole comparison
// with tcpdump; see README.md, "Performance".
package main
