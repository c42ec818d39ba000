package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// Counters holds the network namespace's protocol counters from
// /proc/net/snmp and /proc/net/netstat (proc(5)), keyed "Prefix.Name" as the
// files spell them, e.g. "Tcp.AttemptFails", "Tcp.OutRsts",
// "TcpExt.ListenOverflows", "TcpExt.TCPAbortOnData". A counter the running
// kernel does not print is simply absent from the map.
//
// Values are the kernel's unsigned longs. The one signed field, Tcp.MaxConn
// (-1: no limit), is stored as its two's-complement bit pattern; read it as
// int64(c["Tcp.MaxConn"]). The IPv4 "Tcp" counters also count IPv6.
type Counters map[string]uint64

// Sub returns c - prev for every counter present in both, with unsigned
// wrap-around (a counter that went backwards, which only happens when a
// namespace is recreated, yields a huge value).
func (c Counters) Sub(prev Counters) Counters {
	d := make(Counters, len(c))
	for k, v := range c {
		if p, ok := prev[k]; ok {
			d[k] = v - p
		}
	}
	return d
}

// ParseSNMP parses the text of /proc/net/snmp or /proc/net/netstat (they
// share a format: for each prefix, a line of names followed by a line of
// values, e.g. "Tcp: RtoAlgorithm RtoMin ..." then "Tcp: 1 200 ...") and
// adds the counters to into, which is allocated if nil. Errors wrap ErrParse
// and quote the offending line.
func ParseSNMP(r io.Reader, into Counters) (Counters, error) {
	if into == nil {
		into = make(Counters)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 8192), 1<<20)
	for sc.Scan() {
		head := bytes.TrimSpace(sc.Bytes())
		if len(head) == 0 {
			continue
		}
		prefix, names, ok := bytes.Cut(head, []byte(":"))
		if !ok || len(prefix) == 0 {
			return into, fmt.Errorf("%w: want \"Prefix: names...\" in line %q", ErrParse, head)
		}
		// head aliases the scanner's buffer: copy what the next Scan would clobber.
		p, nameFields := string(prefix), bytes.Fields(bytes.Clone(names))
		if !sc.Scan() {
			if err := sc.Err(); err != nil {
				return into, fmt.Errorf("%w: failed to read counters: %v", ErrParse, err)
			}
			return into, fmt.Errorf("%w: header line %q has no value line", ErrParse, head)
		}
		line := bytes.TrimSpace(sc.Bytes())
		vp, vals, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(vp) != p {
			return into, fmt.Errorf("%w: want a %q value line, got line %q", ErrParse, p+":", line)
		}
		valFields := bytes.Fields(vals)
		if len(valFields) != len(nameFields) {
			return into, fmt.Errorf("%w: %d names but %d values in line %q", ErrParse, len(nameFields), len(valFields), line)
		}
		for i, v := range valFields {
			n, ok := parseCounter(v)
			if !ok {
				return into, fmt.Errorf("%w: bad value %q for %s.%s in line %q", ErrParse, v, p, nameFields[i], line)
			}
			into[p+"."+string(nameFields[i])] = n
		}
	}
	if err := sc.Err(); err != nil {
		return into, fmt.Errorf("%w: failed to read counters: %v", ErrParse, err)
	}
	return into, nil
}

// parseCounter parses an unsigned decimal, or a negative one (Tcp.MaxConn)
// as its two's-complement bit pattern.
func parseCounter(b []byte) (uint64, bool) {
	if len(b) > 1 && b[0] == '-' {
		v, ok := parseDec(b[1:], 63)
		return -v, ok
	}
	return parseDec(b, 64)
}
