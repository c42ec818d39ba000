package sniff_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// tcpdumpOn starts tcpdump writing the packets of ifname in ns to path and
// returns a function that stops it once everything is written.
func tcpdumpOn(t *testing.T, ns *netnstest.NS, ifname, path string) (stop func()) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("skipping, tcpdump not installed: it makes the captures")
	}
	cmd := ns.Command("tcpdump", "-n", "-U", "--immediate-mode", "-i", ifname, "-w", path)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	// tcpdump says "listening on" once its filter is attached.
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				ready <- nil
				_, _ = io.Copy(io.Discard, stderr)
				return
			}
		}
		ready <- fmt.Errorf("tcpdump exited before listening")
	}()
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("tcpdump did not start listening within 5s")
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		time.Sleep(200 * time.Millisecond) // let the last packets reach the socket
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatal("tcpdump did not stop within 5s")
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestIntegrationTunnelCaptures makes resets inside real Linux tunnels
// between two namespaces (a refused IPv4 and a refused IPv6 connect through
// each), captures the underlay with tcpdump, and checks that FileReader
// finds exactly the resets tshark finds, with their VXLAN layers. The
// kernel this runs on decides which tunnels exist: VXLAN is built in where
// GRE, Geneve, IPIP and SIT may not be; those are covered by hand-built
// packets (TestTSharkEncap). With RSTWATCH_UPDATE_TUNNEL_CAPTURES=1 it
// refreshes testdata/tunnels, which TestTSharkTunnelCaptures checks
// without privileges.
func TestIntegrationTunnelCaptures(t *testing.T) {
	tshark := snifftest.LookTShark(t)
	ua4, ub4 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	ua6, ub6 := netip.MustParseAddr("fd52::1"), netip.MustParseAddr("fd52::2")
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, a, b *netnstest.NS) (v4, v6 netip.Addr)
		want  string // the layers, as AppendText writes them
	}{
		{"vxlan_4789", func(t *testing.T, a, b *netnstest.NS) (netip.Addr, netip.Addr) {
			return snifftest.VXLANPair(t, a, b, "vx", 42, 4789, ua4, ub4, 1)
		}, "vxlan:42[198.18.0.2>198.18.0.1]"},
		{"vxlan_8472_ipv6_underlay", func(t *testing.T, a, b *netnstest.NS) (netip.Addr, netip.Addr) {
			return snifftest.VXLANPair(t, a, b, "vx", 43, 8472, ua6, ub6, 2)
		}, "vxlan:43[fd52::2>fd52::1]"},
		{"vxlan_in_vxlan", func(t *testing.T, a, b *netnstest.NS) (netip.Addr, netip.Addr) {
			o4, _ := snifftest.VXLANPair(t, a, b, "vx", 44, 4789, ua4, ub4, 3)
			return snifftest.VXLANPair(t, a, b, "vx2", 45, 8472, netip.MustParseAddr("10.3.0.1"), o4, 4)
		}, "vxlan:44[198.18.0.2>198.18.0.1]/vxlan:45[10.3.0.2>10.3.0.1]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := vethPair(t)
			v4, v6 := tt.setup(t, a, b)
			path := filepath.Join(t.TempDir(), tt.name+".pcap")
			stop := tcpdumpOn(t, a, "va", path)
			for i, dst := range []netip.Addr{v4, v6} {
				src := netip.MustParseAddr(strings.Replace(dst.String(), ".0.2", ".0.1", 1))
				if dst.Is6() {
					src = netip.MustParseAddr(strings.Replace(dst.String(), "::2", "::1", 1))
				}
				snifftest.Refuse(t, a, netip.AddrPortFrom(src, uint16(43000+i)), netip.AddrPortFrom(dst, 9))
			}
			stop()
			for _, e := range checkTShark(t, tshark, path, 2) {
				if e != tt.want {
					t.Errorf("encap %q, want %q", e, tt.want)
				}
			}
			if os.Getenv("RSTWATCH_UPDATE_TUNNEL_CAPTURES") == "1" {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join("testdata", "tunnels", tt.name+".pcap"), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestIntegrationVXLANUnderlay refuses a connect inside a VXLAN tunnel
// between two namespaces and checks what the sniffer reports: on the
// underlay alone, the reset once, with the inner connection and its VXLAN
// layer; on all interfaces of the receiving side, still once (the
// decapsulated copy on the VXLAN device is a duplicate) and with the layer,
// as the underlay copy arrives first. Both capture paths are checked.
func TestIntegrationVXLANUnderlay(t *testing.T) {
	for _, noRing := range []bool{false, true} {
		t.Run(fmt.Sprintf("noring=%t", noRing), func(t *testing.T) {
			a, b := vethPair(t)
			v4, v6 := snifftest.VXLANPair(t, a, b, "vx", 42, 4789, netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), 1)
			underlay := openIn(t, a, sniff.Config{Interfaces: []string{"va"}, NoRing: noRing})
			all := openIn(t, a, sniff.Config{NoRing: noRing})
			for i, dst := range []netip.Addr{v4, v6} {
				src := netip.MustParseAddr(map[bool]string{true: "10.1.0.1", false: "fd00:1::1"}[dst.Is4()])
				client := netip.AddrPortFrom(src, uint16(44000+i))
				server := netip.AddrPortFrom(dst, 9)
				snifftest.Refuse(t, a, client, server)
				for _, s := range []struct {
					name string
					s    *sniff.Sniffer
				}{{"underlay", underlay}, {"all interfaces", all}} {
					got := collect(t, s.s, 2, 500*time.Millisecond)
					if len(got) != 1 {
						t.Fatalf("%s: %d resets, want 1", s.name, len(got))
					}
					e := got[0]
					if e.Src != server || e.Dst != client || e.Ifname != "va" || e.Direction != sniff.In {
						t.Errorf("%s: got %s %s %v > %v, want va in %v > %v", s.name, e.Ifname, e.Direction, e.Src, e.Dst, server, client)
					}
					const want = "vxlan:42[198.18.0.2>198.18.0.1]"
					if enc := string(e.Encap.AppendText(nil)); enc != want {
						t.Errorf("%s: encap %q, want %q", s.name, enc, want)
					}
				}
			}
			// The copies on vx, decapsulated, were seen and suppressed.
			if n := all.Duplicates(); n != 2 {
				t.Errorf("all interfaces: %d duplicates suppressed, want 2 (the copies on vx)", n)
			}
		})
	}
}

// TestIntegrationVLANMetadata sends an 802.1Q-tagged frame carrying a reset
// into a veth: the receiving kernel moves the tag into the packet's
// metadata before any capture sees it, so the sniffer on the other end
// must report the tag from there, on both capture paths.
func TestIntegrationVLANMetadata(t *testing.T) {
	for _, noRing := range []bool{false, true} {
		t.Run(fmt.Sprintf("noring=%t", noRing), func(t *testing.T) {
			a, b := vethPair(t)
			s := openIn(t, b, sniff.Config{NoRing: noRing})
			rst := tcpSpec{src: netip.MustParseAddrPort("198.18.0.1:9"), dst: netip.MustParseAddrPort("198.18.0.2:45000"),
				ack: 99, flags: sniff.FlagRST | sniff.FlagACK, ttl: 64}.build()
			frame := eth(0x0800, rst, [2]uint16{0x8100, 0x6000 | 10}) // priority 3, VLAN 10
			a.Do(t, func() error {
				ifi, err := net.InterfaceByName("va")
				if err != nil {
					return err
				}
				fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				return unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6})
			})
			got := collect(t, s, 2, 500*time.Millisecond)
			if len(got) != 1 {
				t.Fatalf("%d resets, want 1", len(got))
			}
			e := got[0]
			if e.Ifname != "vb" || e.Dst.Port() != 45000 || e.Ack != 99 {
				t.Errorf("got %s %v > %v ack %d", e.Ifname, e.Src, e.Dst, e.Ack)
			}
			if enc := string(e.Encap.AppendJSON(nil)); enc != `[{"type":"vlan","id":10}]` {
				t.Errorf("encap %s, want the tag from the metadata", enc)
			}
		})
	}
}
