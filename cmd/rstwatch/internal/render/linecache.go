package render

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"

	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// Renderer renders reset lines exactly as AppendJSON and AppendText do,
// remembering what a storm repeats: the text of recent addresses (a storm
// comes from and goes to few addresses, and formatting an IPv6 address
// cost more than anything else in a JSON line, 13% of `watch --json` in
// perf), the second of the timestamp, and the fields of a JSON line from
// the interface to the source address. A sink keeps one; it is not safe
// for concurrent use. The zero value is ready to use.
type Renderer struct {
	addrs lineCache
}

// AppendJSON is AppendJSON with the address cache.
func (r *Renderer) AppendJSON(b []byte, e *sniff.Event, v *explain.Verdict, ns *Namespace) []byte {
	return appendJSON(b, e, v, ns, &r.addrs)
}

// AppendText is AppendText with the address cache.
func (r *Renderer) AppendText(b []byte, e *sniff.Event, v *explain.Verdict, ns *Namespace) []byte {
	return appendText(b, e, v, ns, &r.addrs)
}

// lineCache is what a Renderer remembers: a direct-mapped cache of
// formatted addresses, the last second formatted, and the last JSON head.
type lineCache struct {
	slots [64]addrSlot

	sec     int64    // Unix second of secText; secText is empty when unset
	secText [19]byte // "2006-01-02T15:04:05"
	secN    int

	// heads are the last JSON heads, `","ifname":...,"src":"ADDR`: a
	// storm alternates between few (IPv4 and IPv6, say).
	heads    [4]jsonHead
	nextHead uint8
}

type jsonHead struct {
	key  headKey
	text []byte
	ok   bool
}

// headKey is what a JSON line's head is made of.
type headKey struct {
	ifname    string
	ifindex   int
	direction sniff.Direction
	family    sniff.Family
	src       netip.Addr
}

// appendTime appends t as appendJSONTime does, formatting the date and the
// clock only when the second changed; c may be nil.
func (c *lineCache) appendTime(b []byte, t time.Time) []byte {
	if c == nil {
		return appendJSONTime(b, t)
	}
	sec := t.Unix()
	if c.secN == 0 || sec != c.sec {
		start := len(b)
		b = appendJSONTime(b, t)
		// Kept only in the common layout: "...:05.123456789Z".
		if n := len(b) - start; n == len(c.secText)+11 && b[start+len(c.secText)] == '.' {
			c.sec, c.secN = sec, copy(c.secText[:], b[start:])
		} else {
			c.secN = 0
		}
		return b
	}
	b = append(b, c.secText[:c.secN]...)
	return appendFraction(b, t.Nanosecond())
}

// appendHead appends the JSON fields from ifname to the source address
// (without its closing quote), copied whole when a recent line had the
// same; c may be nil.
func (c *lineCache) appendHead(b []byte, e *sniff.Event) []byte {
	k := headKey{e.Ifname, e.Ifindex, e.Direction, e.Family, e.Src.Addr()}
	if c != nil {
		for i := range c.heads {
			if h := &c.heads[i]; h.ok && h.key == k {
				return append(b, h.text...)
			}
		}
	}
	start := len(b)
	b = append(b, `","ifname":`...)
	b = safe.AppendJSON(b, e.Ifname)
	b = append(b, `,"ifindex":`...)
	b = strconv.AppendInt(b, int64(e.Ifindex), 10)
	b = append(b, `,"direction":"`...)
	b = append(b, e.Direction.String()...)
	b = append(b, `","family":"`...)
	b = append(b, e.Family.String()...)
	b = append(b, `","src":"`...)
	b = c.appendAddr(b, e.Src.Addr())
	// A hostile interface name could make it long: keep at most 256.
	if n := len(b) - start; c != nil && n <= 256 {
		h := &c.heads[c.nextHead%uint8(len(c.heads))]
		c.nextHead++
		h.key, h.text, h.ok = k, append(h.text[:0], b[start:]...), true
	}
	return b
}

type addrSlot struct {
	addr netip.Addr // the zero Addr: empty
	n    uint8
	text [45]byte // the longest IPv6 text: ffff:...:255.255.255.255
}

// appendAddr appends a as a.AppendTo does; c may be nil.
func (c *lineCache) appendAddr(b []byte, a netip.Addr) []byte {
	if c == nil || !a.IsValid() {
		return a.AppendTo(b)
	}
	raw := a.As16()
	s := &c.slots[(raw[15]^raw[13]^raw[11]*7)&63]
	if s.addr == a {
		return append(b, s.text[:s.n]...)
	}
	start := len(b)
	b = a.AppendTo(b)
	if n := len(b) - start; n <= len(s.text) {
		s.addr, s.n = a, uint8(copy(s.text[:], b[start:]))
	}
	return b
}
