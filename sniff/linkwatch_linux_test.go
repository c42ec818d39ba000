package sniff_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// linkPair joins a (ifA, 198.18.N.1) and b (198.18.N.2) with a veth pair.
func linkPair(t *testing.T, a *netnstest.NS, ifA string, b *netnstest.NS, ifB string, n int) {
	t.Helper()
	pfx := func(host int) []netip.Prefix {
		return []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(n), byte(host)}), 24)}
	}
	netnstest.Link(t, a, ifA, pfx(1), b, ifB, pfx(2))
}

// TestIntegrationInterfaceGoneEndsCapture deletes the only interface a
// capture names: Next must end with an *InterfaceGoneError naming it, at
// once, not block until the deadline as if nothing happened.
func TestIntegrationInterfaceGoneEndsCapture(t *testing.T) {
	for _, noRing := range []bool{false, true} {
		t.Run(map[bool]string{false: "ring", true: "recvmmsg"}[noRing], func(t *testing.T) {
			a, b := netnstest.New(t), netnstest.New(t)
			linkPair(t, a, "rel-y1", b, "peer-y1", 1)
			s := openIn(t, a, sniff.Config{Interfaces: []string{"rel-y1"}, NoRing: noRing})
			if err := s.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				var e sniff.Event
				for {
					if err := s.Next(&e); err != nil {
						done <- err
						return
					}
				}
			}()
			time.Sleep(50 * time.Millisecond)
			start := time.Now()
			a.IP(t, "link", "del", "rel-y1")
			err := <-done
			var gone *sniff.InterfaceGoneError
			if !errors.As(err, &gone) || gone.Name != "rel-y1" {
				t.Fatalf("Next returned %v after the interface was deleted, want an *InterfaceGoneError for rel-y1", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Next returned %v after the deletion, want it at once", d)
			}
			if err.Error() != "interface rel-y1 went away" {
				t.Errorf("error reads %q", err)
			}
		})
	}
}

// TestIntegrationInterfaceGoneAndBack names two interfaces, deletes one:
// the capture goes on with the other and says so; re-created under the same
// name (with a new ifindex) the interface is captured again.
func TestIntegrationInterfaceGoneAndBack(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	linkPair(t, a, "rel-x1", b, "peer-x1", 1)
	linkPair(t, a, "rel-x2", b, "peer-x2", 2)
	notes := make(chan string, 16)
	s := openIn(t, a, sniff.Config{Interfaces: []string{"rel-x1", "rel-x2"}, Notify: func(m string) { notes <- m }})
	waitNote := func(want string) {
		t.Helper()
		select {
		case m := <-notes:
			if !strings.Contains(m, want) {
				t.Fatalf("notice %q, want one containing %q", m, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("no notice %q within 2s", want)
		}
	}
	// refuse makes a (198.18.n.1) refuse a connect from b, and checks that
	// the capture reports that reset, sent on ifname.
	refuse := func(n int, port uint16, ifname string) {
		t.Helper()
		server := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(n), 1}), 7211)
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(n), 2}), port)
		snifftest.Refuse(t, b, client, server)
		got := collect(t, s, 1, time.Second)
		if len(got) != 1 || got[0].Ifname != ifname || got[0].Src != server || got[0].Dst != client {
			t.Fatalf("captured %+v, want one reset %v > %v on %s", got, server, client, ifname)
		}
	}
	refuse(1, 42001, "rel-x1")

	a.IP(t, "link", "del", "rel-x1")
	waitNote("interface rel-x1 went away")
	refuse(2, 42002, "rel-x2")

	linkPair(t, a, "rel-x1", b, "peer-x1", 1)
	waitNote("interface rel-x1 is back")
	refuse(1, 42003, "rel-x1")
	refuse(2, 42004, "rel-x2")
	select {
	case m := <-notes:
		t.Errorf("unexpected notice %q", m)
	default:
	}
}
