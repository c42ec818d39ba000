package proc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
)

// ParseNetTCP parses the text of /proc/net/tcp or /proc/net/tcp6 (proc(5)).
// The header line is skipped; the address family of each line is taken from
// the width of its address, not from the file name, so both files (or their
// concatenation) parse the same way. Errors wrap ErrParse and quote the line.
func ParseNetTCP(r io.Reader) ([]Socket, error) {
	return AppendNetTCP(nil, r)
}

// AppendNetTCP is like ParseNetTCP but appends to dst, which lets callers
// reuse a slice between reads. On error the sockets parsed so far are
// returned with it.
func AppendNetTCP(dst []Socket, r io.Reader) ([]Socket, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if isNetTCPHeader(line) {
			continue
		}
		s, err := parseNetTCPLine(line)
		if err != nil {
			return dst, err
		}
		dst = append(dst, s)
	}
	if err := sc.Err(); err != nil {
		return dst, fmt.Errorf("%w: failed to read net/tcp: %v", ErrParse, err)
	}
	return dst, nil
}

// isNetTCPHeader reports whether line is the header ("  sl  local_address ...")
// or blank.
func isNetTCPHeader(line []byte) bool {
	t := bytes.TrimLeft(line, " \t")
	return len(t) == 0 || bytes.HasPrefix(t, []byte("sl "))
}

// netTCPFields is the number of leading columns a /proc/net/tcp line must
// have: sl, local_address, rem_address, st, tx_queue:rx_queue, tr:tm->when,
// retrnsmt, uid, timeout, inode. Full sockets print more (refcount, pointer,
// rto, ato, ...); TIME-WAIT and request sockets print fewer, never less than
// these ten.
const netTCPFields = 10

// parseNetTCPLine parses one data line of /proc/net/tcp{,6}, e.g.
//
//	0: 0100007F:0016 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 12345 1 ...
//
// It does not allocate unless it fails.
func parseNetTCPLine(line []byte) (Socket, error) {
	var f [netTCPFields][]byte
	n := 0
	for rest := line; n < len(f); n++ {
		rest = bytes.TrimLeft(rest, " \t")
		if len(rest) == 0 {
			break
		}
		i := bytes.IndexAny(rest, " \t")
		if i < 0 {
			i = len(rest)
		}
		f[n], rest = rest[:i], rest[i:]
	}
	if n < netTCPFields {
		return Socket{}, lineError(line, "want at least %d columns, got %d", netTCPFields, n)
	}
	if len(f[0]) < 2 || f[0][len(f[0])-1] != ':' {
		return Socket{}, lineError(line, "bad sl %q", f[0])
	}
	var s Socket
	var ok bool
	if s.Local, ok = parseProcAddrPort(f[1]); !ok {
		return Socket{}, lineError(line, "bad local_address %q", f[1])
	}
	if s.Remote, ok = parseProcAddrPort(f[2]); !ok {
		return Socket{}, lineError(line, "bad rem_address %q", f[2])
	}
	if s.Local.Addr().BitLen() != s.Remote.Addr().BitLen() {
		return Socket{}, lineError(line, "local_address %q and rem_address %q differ in family", f[1], f[2])
	}
	st, ok := parseHex(f[3], 8)
	if !ok || st == 0 || st >= uint64(maxState) {
		return Socket{}, lineError(line, "bad st %q", f[3])
	}
	s.State = State(st)
	i := bytes.IndexByte(f[4], ':')
	if i < 0 {
		return Socket{}, lineError(line, "bad tx_queue:rx_queue %q", f[4])
	}
	tx, ok1 := parseHex(f[4][:i], 32)
	rx, ok2 := parseHex(f[4][i+1:], 32)
	if !ok1 || !ok2 {
		return Socket{}, lineError(line, "bad tx_queue:rx_queue %q", f[4])
	}
	s.SendQ, s.RecvQ = uint32(tx), uint32(rx)
	uid, ok := parseDec(f[7], 32)
	if !ok {
		return Socket{}, lineError(line, "bad uid %q", f[7])
	}
	s.UID = uint32(uid)
	if s.Inode, ok = parseDec(f[9], 64); !ok {
		return Socket{}, lineError(line, "bad inode %q", f[9])
	}
	return s, nil
}

func lineError(line []byte, format string, args ...any) error {
	return fmt.Errorf("%w: %s in line %q", ErrParse, fmt.Sprintf(format, args...), line)
}

// parseProcAddrPort parses "ADDR:PORT" from /proc/net/tcp{,6}.
//
// The kernel prints the address with %08X of each 32-bit word of the
// address, read in host byte order: the IPv4 address (network order, __be32)
// is printed as the u32 its bytes form on this machine, so 127.0.0.1 is
// "0100007F" on little-endian and "7F000001" on big-endian hosts; an IPv6
// address is four such words in order (s6_addr32[0..3]), each with its bytes
// reversed on little-endian. Writing each parsed word back in native order
// undoes this on either kind of host. The port is printed as a host-order
// number (%04X of ntohs).
func parseProcAddrPort(b []byte) (netip.AddrPort, bool) {
	i := bytes.IndexByte(b, ':')
	if i < 0 {
		return netip.AddrPort{}, false
	}
	ah, ph := b[:i], b[i+1:]
	port, ok := parseHex(ph, 16)
	if !ok {
		return netip.AddrPort{}, false
	}
	switch len(ah) {
	case 8:
		w, ok := parseHex(ah, 32)
		if !ok {
			return netip.AddrPort{}, false
		}
		var a [4]byte
		binary.NativeEndian.PutUint32(a[:], uint32(w))
		return netip.AddrPortFrom(netip.AddrFrom4(a), uint16(port)), true
	case 32:
		var a [16]byte
		for k := 0; k < 4; k++ {
			w, ok := parseHex(ah[8*k:8*k+8], 32)
			if !ok {
				return netip.AddrPort{}, false
			}
			binary.NativeEndian.PutUint32(a[4*k:], uint32(w))
		}
		return netip.AddrPortFrom(netip.AddrFrom16(a), uint16(port)), true
	}
	return netip.AddrPort{}, false
}

// parseHex parses a non-empty hexadecimal number of at most bits bits.
func parseHex(b []byte, bits uint) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	if bits < 64 && v>>bits != 0 {
		return 0, false
	}
	return v, true
}

// parseDec parses a non-empty unsigned decimal number of at most bits bits.
func parseDec(b []byte, bits uint) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if bits < 64 && v>>bits != 0 {
		return 0, false
	}
	return v, true
}
