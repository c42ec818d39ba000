// Package filter builds the classic BPF program that rstwatch attaches to its
// AF_PACKET socket so that the kernel hands it TCP resets (and, optionally,
// the SYNs that precede them) and nothing else.
//
// The package is OS-neutral: it only builds and assembles instructions with
// golang.org/x/net/bpf and never opens a socket, so it compiles and its unit
// tests run anywhere. Attaching the program (SO_ATTACH_FILTER, before bind, as
// github.com/mdlayher/packet does with Config.Filter) needs CAP_NET_RAW and is
// the caller's business.
//
// # Two layers
//
// [Core] is the protocol filter. Its input is a packet starting at the IP
// header, which is what a SOCK_DGRAM packet socket passes to the filter
// (packet(7)). It uses only plain loads, jumps, ALU operations and scratch
// memory, so [bpf.NewVM] can run it and every branch is unit-tested without
// privileges. It:
//
//   - dispatches on the IP version nibble (ldb [0]; rsh #4), not on the
//     ethertype, which the VM cannot see;
//   - for IPv4 (RFC 791) requires protocol 6, rejects non-first fragments
//     (ldh [6]; jset #0x1fff), finds the TCP header with ldxb 4*([0]&0xf) and
//     rejects IHL < 5 (the "IHL trap": a bogus IHL would make the program read
//     the TCP flags from inside the IP header);
//   - for IPv6 (RFC 8200) walks up to [MaxIPv6ExtHeaders] extension headers:
//     hop-by-hop options (0), routing (43), destination options (60),
//     fragment (44, non-first fragments rejected) and authentication header
//     (51, RFC 4302, length (len+2)*4). Any other next header (ESP 50, no next
//     header 59, UDP 17, ICMPv6 58, ...) and deeper chains are rejected. The X
//     register carries the offset of the current header and scratch word M[0]
//     is used while advancing it;
//   - tests the TCP flags byte at [x+13]: RST, or with [Options.SYN] also SYN
//     without ACK;
//   - applies the optional host clause (IPv4 [12]/[16], IPv6 [8:24]/[24:40])
//     and port clause (ldh [x+0] / ldh [x+2]);
//   - looks one tunnel deep when the IP packet does not carry TCP: VXLAN
//     (UDP destination port 4789, and 8472 as Linux uses by default),
//     Geneve (6081, with options), GRE version 0 (with checksum, key and
//     sequence number; carrying IPv4, IPv6, Ethernet or ERSPAN types I-III)
//     and IP in IP (protocols 4 and 41), with at most one 802.1Q tag on an
//     inner Ethernet frame. The inner IP
//     packet goes through the same checks, host and port clauses included,
//     with X-relative loads. This section is laid out after the TCP block,
//     so a TCP segment that is not in a tunnel runs exactly the instructions
//     it ran before tunnels were added (19 for an IPv4 ACK through Kernel,
//     14 for IPv6); only packets that are not TCP look further (a UDP
//     datagram on another port: 21 instead of 11 for IPv4, 22 instead of 17
//     for IPv6). Because the outer family of a tunnel need not be the inner
//     one, both IP versions are parsed whatever hosts are listed.
//
// Accepted packets return the snap length, rejected ones 0. A load past the
// end of the packet ends the program with 0 in the kernel and in the VM, so
// truncated packets are rejected without explicit length checks.
//
// [Kernel] prefixes Core with a prologue that only the Linux kernel can run,
// because it reads ancillary data (SKF_AD_* loads, [bpf.LoadExtension]):
//
//   - SKF_AD_PROTOCOL (the sll_protocol ethertype) must be IPv4 (0x0800) or
//     IPv6 (0x86dd): the version nibble alone would let ARP or other
//     protocols through if their first byte happens to look like a version;
//   - on loopback (SKF_AD_HATYPE 772, ARPHRD_LOOPBACK) every packet is seen
//     twice, first as PACKET_OUTGOING and then as PACKET_HOST with identical
//     bytes; the prologue drops the PACKET_HOST copy (SKF_AD_PKTTYPE 0) and
//     keeps the outgoing one, which arrives a little earlier and helps
//     attribution;
//   - with [Options.Interfaces], only packets whose SKF_AD_IFINDEX is listed.
//
// Note that Kernel's ethertype test and Core's version test are independent:
// a packet whose ethertype is IPv4 but whose first nibble is 6 is parsed as
// IPv6. The kernel's own IP stacks would drop such a packet; decoders should
// not trust one over the other blindly.
//
// Conditional jumps in classic BPF skip at most 255 instructions. Programs
// are therefore written against a small label-resolving assembler (see
// builder.go) that lays out forward jumps and inserts unconditional ja
// trampolines where a conditional target is too far away.
//
// The default program ([Kernel] with zero [Options]) is 388 instructions
// ([Core] alone is 380, of which the tunnel section with its own IPv6 walk
// and TCP block is 245); the kernel accepts up to 4096.
package filter
