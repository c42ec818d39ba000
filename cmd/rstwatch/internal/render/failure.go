package render

import (
	"strconv"
	"time"

	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// EventFieldsV3 are the fields issue 3/7 added: every event has "kind"
// ("reset", "unanswered" or "unreachable"); an unanswered one has
// "attempts" and "waited_s", an unreachable one "icmp".
var EventFieldsV3 = []string{"kind"}

// kindOf is the event's kind; a verdict made before kinds existed is a
// reset's.
func kindOf(v *explain.Verdict) explain.Kind {
	if v.Kind == 0 {
		return explain.KindReset
	}
	return v.Kind
}

// appendKindJSON appends "kind" and what tells of a failure that is not
// a reset, starting with a comma:
//
//	"kind":"unanswered","attempts":3,"waited_s":3.015
//	"kind":"unreachable","icmp":{"from":"10.0.0.2","by":"destination","type":3,"code":3,"text":"port unreachable"}
func appendKindJSON(b []byte, e *sniff.Event, v *explain.Verdict) []byte {
	k := kindOf(v)
	b = append(b, `,"kind":"`...)
	b = append(b, k.String()...)
	b = append(b, '"')
	switch k {
	case explain.KindUnanswered:
		b = append(b, `,"attempts":`...)
		b = strconv.AppendInt(b, int64(v.Attempts), 10)
		b = append(b, `,"waited_s":`...)
		b = strconv.AppendFloat(b, waited(e, v).Seconds(), 'f', 3, 64)
	case explain.KindUnreachable:
		b = append(b, `,"icmp":{"from":"`...)
		b = e.ICMP.From.AppendTo(b)
		b = append(b, `","by":"`...)
		b = append(b, icmpBy(e)...)
		b = append(b, `","type":`...)
		b = strconv.AppendUint(b, uint64(e.ICMP.Type), 10)
		b = append(b, `,"code":`...)
		b = strconv.AppendUint(b, uint64(e.ICMP.Code), 10)
		b = append(b, `,"text":"`...)
		b = append(b, e.ICMP.String()...) // built-in words, nothing to escape
		b = append(b, `"}`...)
	}
	return b
}

// waited is how long the handshake has gone unanswered.
func waited(e *sniff.Event, v *explain.Verdict) time.Duration {
	if v.First.IsZero() {
		return 0
	}
	return e.Time.Sub(v.First)
}

// icmpBy says who sent an ICMP error: the connection's server itself (the
// "destination") or a "router" on the way.
func icmpBy(e *sniff.Event) string {
	if e.ICMP.From == e.Dst.Addr() {
		return "destination"
	}
	return "router"
}

// appendICMPText writes the middle of an ICMP error's line:
// ": ICMP port unreachable from 10.0.0.2 (destination), seq 123".
func appendICMPText(b []byte, e *sniff.Event) []byte {
	b = append(b, ": ICMP"...)
	if e.ICMP.V6 {
		b = append(b, "v6"...)
	}
	b = append(b, ' ')
	b = append(b, e.ICMP.String()...)
	b = append(b, " from "...)
	b = e.ICMP.From.AppendTo(b)
	b = append(b, " ("...)
	b = append(b, icmpBy(e)...)
	b = append(b, "), seq "...)
	return strconv.AppendUint(b, uint64(e.Seq), 10)
}

// appendFailureText appends the plain-words tail of an unanswered or
// unreachable event's line, e.g. "; unanswered, timeout: SYN sent 3 times
// in 3.015s, no answer from 10.0.0.2:8080 (http); client curl pid 812".
func appendFailureText(b []byte, e *sniff.Event, v *explain.Verdict) []byte {
	b = append(b, "; "...)
	b = append(b, v.Kind.String()...)
	b = append(b, ", "...)
	b = append(b, v.Cause.String()...)
	switch {
	case v.Offline:
		b = append(b, " (offline)"...)
	case v.Sampled:
		b = append(b, " (from the packet: attribution over budget)"...)
	}
	b = append(b, ": "...)
	switch v.Kind {
	case explain.KindUnanswered:
		synack := e.Flags.Has(sniff.FlagSYN | sniff.FlagACK)
		if synack {
			b = append(b, "SYN-ACK"...)
		} else {
			b = append(b, "SYN"...)
		}
		b = append(b, " sent "...)
		b = strconv.AppendInt(b, int64(v.Attempts), 10)
		b = append(b, " times in "...)
		b = strconv.AppendFloat(b, waited(e, v).Seconds(), 'f', 3, 64)
		b = append(b, "s, "...)
		if synack {
			b = append(b, "client "...)
			b = e.Src.AppendTo(b)
			b = append(b, " never completed the handshake with "...)
			b = appendEndpointService(b, e.Dst)
			if v.Listener.Owned {
				b = append(b, " ("...)
				b = appendOwner(b, v.Listener.Comm, v.Listener.PID)
				b = append(b, ')')
			}
		} else {
			b = append(b, "no answer from "...)
			b = appendEndpointService(b, e.Dst)
		}
	case explain.KindUnreachable:
		if icmpBy(e) == "destination" {
			b = e.Dst.Addr().AppendTo(b)
		} else {
			b = append(b, "router "...)
			b = e.ICMP.From.AppendTo(b)
		}
		b = append(b, " answered "...)
		b = append(b, e.ICMP.String()...)
		b = append(b, " for "...)
		b = appendEndpointService(b, e.Dst)
	}
	if p := &v.Sender.Process; p.Owned {
		b = append(b, "; client "...)
		b = appendOwner(b, p.Comm, p.PID)
	}
	return b
}
