package sniff

import (
	"bytes"
	"encoding/binary"
	"strconv"
)

// f5Prefix starts the text F5 BIG-IP puts in the payload of the resets it
// sends ("[RST+ BIG-IP: ...]" style reason text).
var f5Prefix = []byte("BIG-IP:")

// The RST diagnostic payload of draft-ietf-tcpm-rst-diagnostic-payload
// (section 4.1): a magic number, a reason code and a Private Enterprise
// Number, 8 bytes in all, in network byte order.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|             0x33AA            |          reason-code          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                              pen                              |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	diagMagic      = 0x33aa
	diagLen        = 8 // "SEG.LEN MUST be 8 for an RST with diagnostic payload"
	diagCodeOffset = 2
	diagPENOffset  = 4
)

// diagCauses are the initial "TCP Failure Causes" of the draft (section
// 9.1), used when the PEN is 0. tcpdump -vv prints the same names.
var diagCauses = [...]string{
	1:  "Illegal option length",
	2:  "Desynchronized state",
	3:  "New data is received after CLOSE is called",
	4:  "ABORT process",
	5:  "Unexpected ACK received by non-synchronized state connection",
	6:  "Unexpected SYN in the window",
	7:  "Unexpected security compartment",
	8:  "Malformed message",
	9:  "Not authorized",
	10: "Resource exceeded",
	11: "Network failure",
	12: "Reset received from the peer",
	13: "Destination unreachable",
	14: "Connection timeout",
	15: "Too much outstanding data",
	16: "Unacceptable performance",
	17: "Middlebox interference",
}

// Reason returns the reason a reset carries in its payload, or "" when it
// carries none that rstwatch understands. Two kinds are understood:
//
//   - the binary diagnostic payload of draft-ietf-tcpm-rst-diagnostic-payload,
//     returned as "code 1 (Illegal option length), pen 0" (tcpdump -v prints
//     "code 1, pen 0", -vv the name). The name is given only for the
//     registry's codes, that is with PEN 0; a vendor's code is returned as
//     "code 1234, pen 32473". A payload that is not exactly 8 bytes, or has
//     the reserved code 0, is malformed and, as the draft requires, ignored.
//   - the text F5 BIG-IP sends ("BIG-IP: [0x11c5672:3045] {peer} TCP RST
//     from remote system"), returned whole, without trailing NUL padding.
//     tcpdump -v prints its first 30 bytes.
//
// payload is the captured part of the segment's data, so a snaplen that cut
// it short cuts the text too and makes a diagnostic payload malformed. The
// text is returned raw: callers escape it before printing. Reason allocates
// only for a reset that has a reason.
func Reason(payload []byte) string {
	if len(payload) == 0 {
		return ""
	}
	if len(payload) == diagLen && binary.BigEndian.Uint16(payload) == diagMagic {
		return diagReason(payload)
	}
	if i := bytes.Index(payload, f5Prefix); i >= 0 && i < 16 {
		return string(bytes.TrimRight(payload, "\x00"))
	}
	return ""
}

// diagReason formats an 8-byte diagnostic payload whose magic was checked.
func diagReason(p []byte) string {
	code := binary.BigEndian.Uint16(p[diagCodeOffset:])
	pen := binary.BigEndian.Uint32(p[diagPENOffset:])
	if code == 0 {
		return "" // reserved: "MUST NOT be used"
	}
	b := make([]byte, 0, 80)
	b = append(b, "code "...)
	b = strconv.AppendUint(b, uint64(code), 10)
	if pen == 0 && int(code) < len(diagCauses) {
		b = append(b, " ("...)
		b = append(b, diagCauses[code]...)
		b = append(b, ')')
	}
	b = append(b, ", pen "...)
	b = strconv.AppendUint(b, uint64(pen), 10)
	return string(b)
}
