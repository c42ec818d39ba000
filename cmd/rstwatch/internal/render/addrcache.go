package render

import (
	"net/netip"

	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// Renderer renders reset lines exactly as AppendJSON and AppendText do,
// remembering the text of recent addresses: a storm comes from and goes to
// few addresses, and formatting an IPv6 address cost more than anything
// else in a JSON line (13% of `watch --json` in perf). A sink keeps one;
// it is not safe for concurrent use. The zero value is ready to use.
type Renderer struct {
	addrs addrCache
}

// AppendJSON is AppendJSON with the address cache.
func (r *Renderer) AppendJSON(b []byte, e *sniff.Event, v *explain.Verdict, ns *Namespace) []byte {
	return appendJSON(b, e, v, ns, &r.addrs)
}

// AppendText is AppendText with the address cache.
func (r *Renderer) AppendText(b []byte, e *sniff.Event, v *explain.Verdict, ns *Namespace) []byte {
	return appendText(b, e, v, ns, &r.addrs)
}

// addrCache is a direct-mapped cache of formatted addresses.
type addrCache struct {
	slots [64]addrSlot
}

type addrSlot struct {
	addr netip.Addr // the zero Addr: empty
	n    uint8
	text [45]byte // the longest IPv6 text: ffff:...:255.255.255.255
}

// appendAddr appends a as a.AppendTo does; c may be nil.
func (c *addrCache) appendAddr(b []byte, a netip.Addr) []byte {
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
