package render

import (
	"net/netip"
	"strconv"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

const (
	TextTime = "15:04:05.000000"
	JSONTime = "2006-01-02T15:04:05.000000000Z07:00" // RFC 3339 with nanoseconds
)

// EventFieldsV1 are the JSON fields of a reset that issue 1/6 fixed, in
// the order AppendJSON writes them; later fields may be added, none of
// these renamed or dropped.
var EventFieldsV1 = []string{"time", "ifname", "ifindex", "direction", "family", "src", "src_port", "dst", "dst_port",
	"flags", "seq", "ack", "window", "payload_len", "ttl", "tos"}

// EventFieldsV2 are the fields issue 6/7 added: the layers around the
// connection.
var EventFieldsV2 = []string{"encap"}

// Namespace names the network namespace a reset was seen in, when
// rstwatch watches another one (or all of them).
type Namespace struct {
	Inode uint64 // identifies the namespace (lsns, ip netns identify)
	Name  string // a /run/netns name, a container id, or "pid N (comm)"
}

// AppendText appends e with its verdict as one tcpdump-style line without
// the newline; ns is nil for this process's own namespace:
//
//	15:13:13.476095 lo local 127.0.0.1.7211 > 127.0.0.1.41838: Flags [R.], seq 0, ack 2154306035, win 0, length 0
//
// Layers around the connection come before it:
//
//	15:13:13.476095 eth0 in vxlan:42[10.0.0.1>10.0.0.2] 10.1.1.1.80 > 10.1.2.1.41838: Flags [R.], ...
func AppendText(b []byte, e *sniff.Event, v *explain.Verdict, ns *Namespace) []byte {
	return appendText(b, e, v, ns, nil)
}

// appendText is AppendText, with an address cache unless c is nil.
func appendText(b []byte, e *sniff.Event, v *explain.Verdict, ns *Namespace, c *lineCache) []byte {
	b = e.Time.AppendFormat(b, TextTime)
	b = append(b, ' ')
	if ns != nil {
		// Watching other namespaces: say which one this came from.
		b = append(b, '[')
		b = safe.AppendText(b, ns.Name)
		b = append(b, "] "...)
	}
	if e.Ifname == "" {
		b = append(b, '-') // a capture file that names no interface
	} else {
		b = safe.AppendText(b, e.Ifname)
	}
	b = append(b, ' ')
	b = append(b, e.Direction.String()...)
	b = append(b, ' ')
	if e.Encap.Len() > 0 {
		// Tunnels and tags around the connection, e.g.
		// vxlan:42[10.0.0.1>10.0.0.2]; no outside string in it.
		b = e.Encap.AppendText(b)
		b = append(b, ' ')
	}
	b = appendEndpoint(b, c, e.Src)
	b = append(b, " > "...)
	b = appendEndpoint(b, c, e.Dst)
	if v.Kind == explain.KindUnreachable {
		b = appendICMPText(b, e)
		return appendFailureText(b, e, v)
	}
	b = append(b, ": Flags ["...)
	b = e.Flags.AppendTo(b)
	b = append(b, "], seq "...)
	b = strconv.AppendUint(b, uint64(e.Seq), 10)
	if e.PayloadLen > 0 {
		// tcpdump prints the sequence range a segment with data covers.
		b = append(b, ':')
		b = strconv.AppendUint(b, uint64(e.Seq+uint32(e.PayloadLen)), 10)
	}
	if e.Flags.Has(sniff.FlagACK) {
		b = append(b, ", ack "...)
		b = strconv.AppendUint(b, uint64(e.Ack), 10)
	}
	b = append(b, ", win "...)
	b = strconv.AppendUint(b, uint64(e.Window), 10)
	b = append(b, ", length "...)
	b = strconv.AppendInt(b, int64(e.PayloadLen), 10)
	if r := sniff.Reason(e.Payload); r != "" {
		b = append(b, " ["...)
		b = safe.AppendText(b, r)
		b = append(b, ']')
	}
	if v.Kind == explain.KindUnanswered {
		return appendFailureText(b, e, v)
	}
	return appendVerdictText(b, e, v)
}

// appendEndpoint writes addr.port as tcpdump does (also for IPv6).
func appendEndpoint(b []byte, c *lineCache, ap netip.AddrPort) []byte {
	b = c.appendAddr(b, ap.Addr())
	b = append(b, '.')
	return strconv.AppendUint(b, uint64(ap.Port()), 10)
}

// AppendJSON appends e with its verdict as one JSON object without the
// newline; ns is nil for this process's own namespace. The field names are
// a contract (issue 1/6): add fields, never rename or drop them.
func AppendJSON(b []byte, e *sniff.Event, v *explain.Verdict, ns *Namespace) []byte {
	return appendJSON(b, e, v, ns, nil)
}

// appendJSON is AppendJSON, with an address cache unless c is nil.
func appendJSON(b []byte, e *sniff.Event, v *explain.Verdict, ns *Namespace, c *lineCache) []byte {
	b = append(b, `{"time":"`...)
	b = c.appendTime(b, e.Time)
	b = c.appendHead(b, e)
	b = append(b, `","src_port":`...)
	b = strconv.AppendUint(b, uint64(e.Src.Port()), 10)
	b = append(b, `,"dst":"`...)
	b = c.appendAddr(b, e.Dst.Addr())
	b = append(b, `","dst_port":`...)
	b = strconv.AppendUint(b, uint64(e.Dst.Port()), 10)
	b = append(b, `,"flags":"`...)
	b = e.Flags.AppendTo(b)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, uint64(e.Seq), 10)
	b = append(b, `,"ack":`...)
	b = strconv.AppendUint(b, uint64(e.Ack), 10)
	b = append(b, `,"window":`...)
	b = strconv.AppendUint(b, uint64(e.Window), 10)
	b = append(b, `,"payload_len":`...)
	b = strconv.AppendInt(b, int64(e.PayloadLen), 10)
	b = append(b, `,"ttl":`...)
	b = strconv.AppendUint(b, uint64(e.TTL), 10)
	b = append(b, `,"tos":`...)
	b = strconv.AppendUint(b, uint64(e.TOS), 10)
	b = append(b, `,"reason":`...)
	if r := sniff.Reason(e.Payload); r != "" {
		b = safe.AppendJSON(b, r)
	} else {
		b = append(b, "null"...)
	}
	// The layers outside the reset's IP packet (tunnels, tags), outermost
	// first; null for a bare packet. src and dst are the inner connection's.
	b = append(b, `,"encap":`...)
	b = e.Encap.AppendJSON(b)
	b = appendVerdictJSON(b, v)
	b = appendKindJSON(b, e, v)
	if ns != nil {
		b = append(b, `,"netns":{"inode":`...)
		b = strconv.AppendUint(b, ns.Inode, 10)
		b = append(b, `,"name":`...)
		b = safe.AppendJSON(b, ns.Name)
		b = append(b, '}')
	}
	return append(b, '}')
}

// Plural writes "1 connection", "2 connections".
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
