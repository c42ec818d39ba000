package proc

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fixtureRoot is the shared /proc fixture tree (see ../testdata/proc).
const fixtureRoot = "../testdata/proc"

// recordedRoot holds what TestIntegrationDumpMatchesProc recorded with
// -update on Linux: sock_diag replies as hex and the same namespace's
// /proc/net/tcp{,6}.
const recordedRoot = fixtureRoot + "/ns"

// littleEndian reports whether this host is little-endian: the /proc and
// netlink fixtures were recorded on one and are native-order.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func requireLittleEndian(t testing.TB) {
	t.Helper()
	if !littleEndian {
		t.Skip("skipping, fixture was recorded on a little-endian host")
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// diffSockets returns a readable difference of want and got, or "".
func diffSockets(want, got []Socket) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	var b strings.Builder
	n := max(len(want), len(got))
	for i := range n {
		var w, g string
		if i < len(want) {
			w = fmt.Sprintf("%+v", want[i])
		}
		if i < len(got) {
			g = fmt.Sprintf("%+v", got[i])
		}
		if w != g {
			fmt.Fprintf(&b, "[%d]\n-%s\n+%s\n", i, w, g)
		}
	}
	return b.String()
}

func mustOpen(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("failed to open fixture: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func symlink(target, path string) error { return os.Symlink(target, path) }

func timeSecond(i int) time.Duration { return time.Duration(i) * time.Second }
