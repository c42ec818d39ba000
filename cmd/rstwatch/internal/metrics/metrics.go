package metrics

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/httpserve"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// Bounds on the label values of rstwatch_resets_total, so that a port scan
// or a storm of odd resets cannot grow a scrape without limit.
const (
	// TopPorts is how many ports get their own port label: the ports
	// with the most resets since start. The others are counted under
	// port="other".
	TopPorts = 20
	// MaxPairs caps the distinct (cause, direction) pairs, counting the
	// overflow pair cause="other", direction="other" that takes the
	// resets of any pair beyond the first MaxPairs-1.
	MaxPairs = 64
)

// Registry is rstwatch's Prometheus registry: reset counts by cause,
// direction and port, fed by the capture loop through Observe, plus
// the kernel's TCP counters and the capture's drop count, read when
// scraped. It is safe for concurrent use.
//
// Port labels are bounded: a port gets its own series once it is among the
// TopPorts ports with the most resets since start (by a margin over
// the least of them, so that two close ports do not take turns). A port
// that drops out of the top loses its series (they go stale in
// Prometheus) and from then on its resets count under port="other"; should
// it come back, its series start again from zero, which rate() reads as a
// counter reset. While a series is served it only ever grows.
//
// A registry takes about 600 KiB, mostly the per-port totals that decide
// the top ports.
type Registry struct {
	fs proc.FS // whose net/snmp and net/netstat hold the kernel counters

	mu        sync.Mutex
	drops     func() uint64
	pairIndex map[resetPair]int
	pairs     []pairCounts
	perPort   *[1 << 16]uint64 // resets per port since start, labelled or not
	slotOf    *[1 << 16]uint8  // port -> 1 + its index in top, 0: "other"
	top       [TopPorts]uint16
	ntop      int
}

// resetPair is a series' labels but the port; kind is "reset" for
// rstwatch_resets_total, "unanswered" or "unreachable" for
// rstwatch_failed_connections_total.
type resetPair struct{ kind, cause, direction string }

// pairCounts holds one (cause, direction) pair's counts: counts[0] for
// port="other", counts[1+i] for port top[i].
type pairCounts struct {
	resetPair
	counts [1 + TopPorts]uint64
}

// New returns an empty registry whose kernel counters are read from
// p (proc.NewFS("") reads this process's network namespace; use p.NetOf(pid)
// for another's).
func New(p proc.FS) *Registry {
	return &Registry{
		fs:        p,
		pairIndex: make(map[resetPair]int, MaxPairs),
		perPort:   new([1 << 16]uint64),
		slotOf:    new([1 << 16]uint8),
	}
}

// SetCaptureDrops installs the hook that reports the packets the capture
// lost since start (for rstwatch_capture_drops_total). fn is called at
// scrape time from the HTTP server's goroutine, so it must be safe to call
// concurrently with the capture. Without a hook the metric is not served.
func (m *Registry) SetCaptureDrops(fn func() uint64) {
	m.mu.Lock()
	m.drops = fn
	m.mu.Unlock()
}

// ObserveReset counts one reset. cause and direction should come from a
// small fixed set (they are label values); port is the one the reset is
// about, usually the server's. It does not allocate once the (cause,
// direction) pair has been seen.
func (m *Registry) ObserveReset(cause, direction string, port uint16) {
	m.observe(kindReset, cause, direction, port)
}

const kindReset = "reset"

// observe counts one event of kind; the ports of every kind share the
// TopPorts labels and the pairs share MaxPairs.
func (m *Registry) observe(kind, cause, direction string, port uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := m.pairIndex[resetPair{kind, cause, direction}]
	if !ok {
		i = m.addPairLocked(resetPair{kind, cause, direction})
	}
	m.perPort[port]++
	slot := m.slotOf[port]
	if slot == 0 {
		slot = m.promoteLocked(port)
	}
	m.pairs[i].counts[slot]++
}

func (m *Registry) addPairLocked(p resetPair) int {
	if len(m.pairs) >= MaxPairs-1 { // keep the last for the overflow pair
		p = resetPair{p.kind, "other", "other"}
		if i, ok := m.pairIndex[p]; ok {
			return i
		}
	}
	i := len(m.pairs)
	m.pairs = append(m.pairs, pairCounts{resetPair: p})
	m.pairIndex[p] = i
	return i
}

// promoteLocked gives port a slot of its own if there is a free one or if
// it now has clearly more resets than the least busy labelled port, which
// it then replaces. It returns the port's slot, 0 if it stays "other".
func (m *Registry) promoteLocked(port uint16) uint8 {
	if m.ntop < TopPorts {
		m.top[m.ntop] = port
		m.ntop++
		m.slotOf[port] = uint8(m.ntop)
		return uint8(m.ntop)
	}
	least := 0
	for i := 1; i < m.ntop; i++ {
		if m.perPort[m.top[i]] < m.perPort[m.top[least]] {
			least = i
		}
	}
	n, floor := m.perPort[port], m.perPort[m.top[least]]
	if n <= floor+floor/8 {
		return 0
	}
	m.slotOf[m.top[least]] = 0
	m.top[least] = port
	slot := uint8(least + 1)
	m.slotOf[port] = slot
	for i := range m.pairs {
		m.pairs[i].counts[slot] = 0 // a new series for the new port
	}
	return slot
}

// resetSample is one series of rstwatch_resets_total.
type resetSample struct {
	kind, cause, direction string
	port                   int // -1: "other"
	n                      uint64
}

// snapshot returns the non-zero reset series sorted by cause, direction and
// port ("other" last), and the drops hook.
func (m *Registry) snapshot() ([]resetSample, func() uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []resetSample
	for _, p := range m.pairs {
		for slot, n := range p.counts {
			if n == 0 {
				continue
			}
			port := -1
			if slot > 0 {
				port = int(m.top[slot-1])
			}
			out = append(out, resetSample{p.kind, p.cause, p.direction, port, n})
		}
	}
	slices.SortFunc(out, func(a, b resetSample) int {
		if c := cmp.Compare(a.kind, b.kind); c != 0 {
			return c
		}
		if c := cmp.Compare(a.cause, b.cause); c != 0 {
			return c
		}
		if c := cmp.Compare(a.direction, b.direction); c != 0 {
			return c
		}
		return cmp.Compare(uint32(a.port), uint32(b.port)) // -1 ("other") sorts last
	})
	return out, m.drops
}

// appendSample appends the cause, direction and port labels of s after
// prefix (the metric's name and any label before them), then its value.
func appendSample(b []byte, prefix string, s *resetSample) []byte {
	b = append(b, prefix...)
	b = append(b, "cause="...)
	b = safe.AppendLabel(b, s.cause)
	b = append(b, ",direction="...)
	b = safe.AppendLabel(b, s.direction)
	b = append(b, ",port="...)
	if s.port < 0 {
		b = safe.AppendLabel(b, "other")
	} else {
		b = safe.AppendLabel(b, strconv.Itoa(s.port))
	}
	b = append(b, "} "...)
	b = strconv.AppendUint(b, s.n, 10)
	return append(b, '\n')
}

// AppendExposition appends the registry in the Prometheus text exposition
// format 0.0.4, reading the kernel counters now.
func (m *Registry) AppendExposition(b []byte) []byte {
	resets, drops := m.snapshot()
	b = appendMetricHeader(b, "rstwatch_resets_total", portHelp)
	var failed bool
	for _, s := range resets {
		if s.kind != kindReset {
			failed = true
			continue
		}
		b = appendSample(b, "rstwatch_resets_total{", &s)
	}
	if failed {
		b = appendMetricHeader(b, "rstwatch_failed_connections_total", failedHelp)
		for _, s := range resets {
			if s.kind == kindReset {
				continue
			}
			b = append(b, "rstwatch_failed_connections_total{kind="...)
			b = safe.AppendLabel(b, s.kind)
			b = appendSample(b, ",", &s)
		}
	}
	if drops != nil {
		b = appendMetricHeader(b, "rstwatch_capture_drops_total", "Packets the kernel dropped before rstwatch could read them (PACKET_STATISTICS).")
		b = append(b, "rstwatch_capture_drops_total "...)
		b = strconv.AppendUint(b, drops(), 10)
		b = append(b, '\n')
	}
	c, err := counters.Read(m.fs)
	if err != nil {
		// A comment, so the scrape still carries the resets.
		b = append(b, "# rstwatch: kernel counters unavailable: "...)
		b = safe.AppendText(b, err.Error())
		return append(b, '\n')
	}
	for i := range counters.Catalogue() {
		ci := &counters.Catalogue()[i]
		v, ok := c[ci.Key]
		if !ok {
			continue
		}
		b = appendMetricHeader(b, ci.Metric, "Kernel counter "+ci.Key+": "+ci.Meaning+".")
		b = append(b, ci.Metric...)
		b = append(b, ' ')
		b = strconv.AppendUint(b, v, 10)
		b = append(b, '\n')
	}
	return b
}

// appendMetricHeader appends the HELP and TYPE lines of a counter.
func appendMetricHeader(b []byte, name, help string) []byte {
	b = append(b, "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	for i := 0; i < len(help); i++ {
		switch c := help[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	return append(b, " counter\n"...)
}

// Observe counts the reset e with its verdict v, under its service port
// (ServicePort). It does not allocate once the (cause, direction) pair has
// been seen.
//
// A failure that is not a reset is counted in
// rstwatch_failed_connections_total: an unanswered handshake once, at its
// first retransmission (later ones are the same connection), an ICMP error
// each time.
func (m *Registry) Observe(e *sniff.Event, v *explain.Verdict) {
	switch v.Kind {
	case explain.KindUnanswered:
		if v.Attempts == 2 {
			m.observe(v.Kind.String(), v.Cause.String(), e.Direction.String(), ServicePort(e, v))
		}
	case explain.KindUnreachable:
		m.observe(v.Kind.String(), v.Cause.String(), e.Direction.String(), ServicePort(e, v))
	default:
		m.ObserveReset(v.Cause.String(), e.Direction.String(), ServicePort(e, v))
	}
}

// ServicePort is the port a reset is counted under: the server end of its
// connection, the end that listened, so that resets sent by clients from
// ephemeral ports do not each make a series. That is the reset's source
// port for a refused, rejected or overflow reset (the answer of a listening
// host to a SYN) and for any reset whose sender had a listener bound to
// its address and port (Verdict.Sender.Listening); otherwise, the verdict
// cannot tell which end listened (a client's abort, a stale reset, a file
// read offline), and it is the lower of the two ports, which is the
// service's for any client whose ephemeral port is above it.
func ServicePort(e *sniff.Event, v *explain.Verdict) uint16 {
	src, dst := e.Src.Port(), e.Dst.Port()
	if v.Kind > explain.KindReset {
		return dst // client to server (explain.Failure)
	}
	switch {
	case v.Cause == explain.Refused, v.Cause == explain.Rejected, v.Cause == explain.Overflow,
		v.Sender.Listening == explain.True:
		return src
	}
	return min(src, dst)
}

// portHelp is the HELP text of rstwatch_resets_total: the rule of
// ServicePort, and the bound on port labels.
var portHelp = fmt.Sprintf("TCP resets captured, by cause, direction and port. port is the service port, "+
	"the end of the connection that listened: the reset's source port for a refused, rejected or overflow reset "+
	"or when a listener was bound to it, else the lower of the two ports. "+
	"The %d ports with the most resets get their own port label; the rest are port=\"other\".", TopPorts)

// failedHelp is the HELP text of rstwatch_failed_connections_total.
var failedHelp = fmt.Sprintf("TCP connections that failed without a reset, by kind (unanswered: a SYN or SYN-ACK sent again, "+
	"counted once per connection; unreachable: an ICMP error), cause (timeout, rejected, unreachable), direction and "+
	"the server's port. The port labels are those of rstwatch_resets_total: the %d busiest ports, the rest port=\"other\".", TopPorts)

// ContentType is the media type of the exposition format 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves the registry at /metrics.
func (m *Registry) Handler() httpserve.Handler {
	return httpserve.Handler{Path: "/metrics", ContentType: ContentType, Body: m.AppendExposition}
}
