// Package sniff captures TCP resets from AF_PACKET sockets and decodes them.
//
// The decoder (Segment.Decode) is OS-neutral and allocation-free: it reads an
// IPv4 or IPv6 packet, walks IPv6 extension headers, and fills a caller-owned
// Segment whose fields alias nothing but the caller's buffer. Encap.Peel
// (and Segment.DecodeLayers, which peels then decodes) first removes the
// layers around the innermost IP packet: Ethernet and LLC/SNAP, VLAN and
// QinQ tags, MPLS label stacks (and Ethernet pseudowires), PPPoE sessions,
// GRE with ERSPAN types I-III, VXLAN (UDP 4789 and 8472), Geneve (6081),
// GTP-U (2152) and IP-in-IP in all four combinations, nested up to MaxEncap
// layers. It records them in Encap, a fixed-size value, so an Event's
// addresses are always the inner connection's and its Encap says what it
// was found inside (AppendJSON and AppendText render it). These are the
// only code that touches unvalidated packet bytes; both are fuzzed.
//
// The capture (Open, Sniffer) is Linux-only and needs CAP_NET_RAW. It opens
// one SOCK_DGRAM packet socket bound to every interface (ifindex 0), so every
// link type delivers the IP header at offset 0, attaches the classic BPF
// program from package filter before bind(2), and reads batches with
// recvmmsg(2) into preallocated buffers, keeping the interface index, the
// packet type (direction), the kernel's nanosecond timestamp and any VLAN
// tag the kernel moved into the packet's metadata. The read path allocates
// nothing per packet. With the TPACKET_V3 ring, Next holds the ring for the
// length of a call and copies the event it returns out of it, so a Close
// from another goroutine never unmaps memory that is being read.
//
// Named interfaces are picked out by ifindex in the filter, which a socket
// on ifindex 0 cannot follow by itself; so a capture of named interfaces
// also listens to rtnetlink link notifications: the only named interface
// going away ends the capture (InterfaceGoneError), one of several going
// and coming back is reported (Config.Notify) and followed by rewriting the
// filter. A capture of all interfaces needs none of this and reports
// nothing: on a container host interfaces come and go every second.
package sniff
