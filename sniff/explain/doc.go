// Package explain says why a TCP reset happened and who was involved.
//
// It classifies each reset from its wire shape alone (KERNEL-NOTES facts
// 10 and 11: a stateless reset answering a SYN, a stateless reset answering
// a segment of a connection the sender has no socket for, or a socket's
// abort), and, when the sender or the receiver is on this host, refines
// that with the kernel's socket state from package proc: whether a
// listener was bound to the port, whose socket sent or received the reset,
// who listened on a refused port last, and whether a listener's accept
// queue overflowed. What it does not know stays unknown, with one marked
// exception: a server's socket that lived too briefly for its owner to be
// indexed is attributed to the one process that owns the listener on its
// port, with Seen set to ViaListener ("seen": "listener"), never to Live or
// Recent.
//
// Connections also fail without a reset. A Tracker (fixed memory, no
// allocation per packet) remembers the SYNs, SYN-ACKs and FINs a capture
// passes: Failure reports a handshake sent again (KindUnanswered, cause
// Timeout) or an ICMP error about a connection (KindUnreachable, cause
// Rejected or Unreachable), and AfterClose turns a stale-shaped reset into
// Closed when the sender had sent its FIN there: data arrived after close
// (KERNEL-NOTES facts 19-21). Explainer.ExplainFailure names the local
// client waiting in SYN-SENT.
//
// An Explainer reads /proc and sock_diag, so it is Linux-only in practice;
// the wire-shape classification (WireCause) is OS-neutral.
package explain
