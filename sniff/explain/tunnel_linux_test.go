package explain_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// TestIntegrationExplainTunnel attributes a reset captured inside VXLAN on
// the underlay: the verdict is about the inner connection. A listener in b
// on its overlay address has a firewall rule that rejects connections with
// a reset; the sniffer in b sees the reset leave encapsulated on vb, and
// the explainer in b must find the listener behind the inner source port
// (the outer packet is UDP from 198.18.0.2, where nothing listens).
func TestIntegrationExplainTunnel(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("skipping, nft not installed: it makes the firewall reset")
	}
	a, b := netnstest.New(t), netnstest.New(t)
	netnstest.Link(t, a, "va", []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24")},
		b, "vb", []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24")})
	server4, _ := snifftest.VXLANPair(t, a, b, "vx", 42, 4789, netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), 1)
	server := netip.AddrPortFrom(server4, 7400)
	var ln net.Listener
	b.Do(t, func() (err error) { ln, err = net.Listen("tcp", server.String()); return err })
	defer ln.Close()
	for _, rule := range [][]string{
		{"add", "table", "inet", "t"},
		{"add", "chain", "inet", "t", "in", "{ type filter hook input priority 0; }"},
		{"add", "rule", "inet", "t", "in", "tcp", "dport", "7400", "reject", "with", "tcp", "reset"},
	} {
		if out, err := b.Command("nft", rule...).CombinedOutput(); err != nil {
			t.Fatalf("nft %v: %v: %s", rule, err, out)
		}
	}
	s, err := sniff.Open(&sniff.Config{NetNS: b.Path, Interfaces: []string{"vb"}})
	if errors.Is(err, os.ErrPermission) {
		t.Skipf("skipping, permission denied: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	x := openIn(t, b)
	x.Refresh(time.Now())

	snifftest.Refuse(t, a, netip.MustParseAddrPort("10.1.0.1:45000"), server)
	if err := s.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var e sniff.Event
	if err := s.Next(&e); err != nil {
		t.Fatalf("no reset on the underlay: %v", err)
	}
	if e.Src != server || e.Encap.Len() != 1 || e.Encap.Layer(0).Type != sniff.EncapVXLAN {
		t.Fatalf("got %v > %v encap %s, want the inner reset from %v inside VXLAN", e.Src, e.Dst, e.Encap.AppendText(nil), server)
	}
	var v explain.Verdict
	x.Explain(&e, &v)
	if v.Cause != explain.Rejected || v.Sender.Local != explain.True || v.Sender.Listening != explain.True || !v.Listener.Owned || v.Listener.PID != os.Getpid() {
		t.Fatalf("verdict %+v, want rejected by the listener of this process on %v", v, server)
	}
}
