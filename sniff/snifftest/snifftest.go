//go:build linux

// Package snifftest provides traffic generators and an independent capture
// oracle for rstwatch's privileged tests. Everything runs inside network
// namespaces made by netnstest, so tests never touch the host's traffic.
package snifftest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff"
)

// Refuse connects from local to remote inside ns and fails the test unless
// the connection is refused.
func Refuse(t testing.TB, ns *netnstest.NS, local, remote netip.AddrPort) {
	t.Helper()
	ns.Do(t, func() error {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(local)}
		c, err := d.Dial("tcp", remote.String())
		if err == nil {
			c.Close()
			return fmt.Errorf("connect %v -> %v succeeded, want refused", local, remote)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("connect %v -> %v: %v, want connection refused", local, remote, err)
		}
		return nil
	})
}

// SYNOracle captures every SYN on lo inside a namespace with a plain packet
// socket and no filter, to learn the initial sequence numbers that resets
// must acknowledge. It shares no code with package filter or sniff.Sniffer.
type SYNOracle struct{ c *packet.Conn }

// NewSYNOracle starts the oracle on lo in ns.
func NewSYNOracle(t testing.TB, ns *netnstest.NS) *SYNOracle {
	t.Helper()
	var c *packet.Conn
	ns.Do(t, func() error {
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		c, err = packet.Listen(lo, packet.Datagram, unix.ETH_P_ALL, nil)
		if errors.Is(err, os.ErrPermission) {
			t.Skipf("skipping, permission denied (try setting CAP_NET_RAW capability): %v", err)
		}
		return err
	})
	t.Cleanup(func() { c.Close() })
	return &SYNOracle{c: c}
}

// ISNs returns the initial sequence number of each SYN seen so far, by the
// SYN's source port.
func (o *SYNOracle) ISNs(t testing.TB) map[uint16]uint32 {
	t.Helper()
	out := map[uint16]uint32{}
	buf := make([]byte, 2048)
	o.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	for {
		n, _, err := o.c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatalf("failed to read oracle socket: %v", err)
		}
		var s sniff.Segment
		if s.Decode(buf[:n]) == nil && s.Flags == sniff.FlagSYN {
			out[s.Src.Port()] = s.Seq
		}
	}
}

// VXLANPair makes a VXLAN device named dev in a and b with VNI vni and
// destination port port, tunnelling between underlay addresses ua (in a)
// and ub (in b), and gives it the overlay addresses 10.<net>.0.1 and
// fd00:<net>::1 in a, .2 and ::2 in b. It returns b's overlay addresses.
func VXLANPair(t testing.TB, a, b *netnstest.NS, dev string, vni, port int, ua, ub netip.Addr, net int) (v4, v6 netip.Addr) {
	t.Helper()
	for i, side := range []struct {
		ns            *netnstest.NS
		local, remote netip.Addr
	}{{a, ua, ub}, {b, ub, ua}} {
		side.ns.IP(t, "link", "add", dev, "type", "vxlan", "id", fmt.Sprint(vni), "dstport", fmt.Sprint(port),
			"local", side.local.String(), "remote", side.remote.String())
		side.ns.IP(t, "addr", "add", fmt.Sprintf("10.%d.0.%d/24", net, i+1), "dev", dev)
		side.ns.IP(t, "addr", "add", fmt.Sprintf("fd00:%d::%d/64", net, i+1), "dev", dev, "nodad")
		side.ns.IP(t, "link", "set", dev, "up")
	}
	return netip.MustParseAddr(fmt.Sprintf("10.%d.0.2", net)), netip.MustParseAddr(fmt.Sprintf("fd00:%d::2", net))
}
