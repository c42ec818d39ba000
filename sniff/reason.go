package sniff

import "bytes"

// f5Prefix starts the text F5 BIG-IP puts in the payload of the resets it
// sends ("[RST+ BIG-IP: ...]" style reason text).
var f5Prefix = []byte("BIG-IP:")

// Reason returns the reason a reset carries in its payload, or "" when it
// carries none that rstwatch understands. The text is returned raw:
// callers escape it before printing. It allocates only for a reset that
// has a reason.
func Reason(payload []byte) string {
	if len(payload) == 0 {
		return ""
	}
	if i := bytes.Index(payload, f5Prefix); i >= 0 && i < 16 {
		return string(bytes.TrimRight(payload, "\x00"))
	}
	return ""
}
