package sniff_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// openIn opens a Sniffer inside ns, skipping the test without CAP_NET_RAW.
func openIn(t testing.TB, ns *netnstest.NS, cfg sniff.Config) *sniff.Sniffer {
	t.Helper()
	cfg.NetNS = ns.Path
	s, err := sniff.Open(&cfg)
	if errors.Is(err, os.ErrPermission) {
		t.Skipf("skipping, permission denied (try setting CAP_NET_RAW capability): %v", err)
	}
	if err != nil {
		t.Fatalf("failed to open sniffer: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// collect reads events until n arrived or the deadline passed.
func collect(t *testing.T, s *sniff.Sniffer, n int, wait time.Duration) []sniff.Event {
	t.Helper()
	if err := s.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatalf("failed to set deadline: %v", err)
	}
	var out []sniff.Event
	for len(out) < n {
		var e sniff.Event
		if err := s.Next(&e); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			t.Fatalf("failed to read: %v", err)
		}
		e.Data, e.Payload = nil, nil // alias the buffer
		out = append(out, e)
	}
	return out
}

func TestIntegrationLoopbackRefusedOnce(t *testing.T) {
	for _, tt := range []struct {
		name string
		addr string
	}{{"ipv4", "127.0.0.1"}, {"ipv6", "::1"}} {
		t.Run(tt.name, func(t *testing.T) {
			ns := netnstest.New(t)
			s := openIn(t, ns, sniff.Config{})
			oracle := snifftest.NewSYNOracle(t, ns)
			server := netip.AddrPortFrom(netip.MustParseAddr(tt.addr), 7211)
			const attempts = 10
			for i := range attempts {
				snifftest.Refuse(t, ns, netip.AddrPortFrom(server.Addr(), uint16(41000+i)), server)
			}
			got := collect(t, s, attempts+1, time.Second)
			if len(got) != attempts {
				t.Fatalf("captured %d resets for %d refused connects, want exactly one each", len(got), attempts)
			}
			isn := oracle.ISNs(t)
			for i, e := range got {
				client := uint16(41000 + i)
				want := sniff.Event{Ifindex: 1, Ifname: "lo", Direction: sniff.Local, Len: e.Len, Time: e.Time,
					Segment: e.Segment}
				want.Src, want.Dst = server, netip.AddrPortFrom(server.Addr(), client)
				want.Seq, want.Ack, want.Flags, want.Window, want.PayloadLen = 0, isn[client]+1, sniff.FlagRST|sniff.FlagACK, 0, 0
				if _, ok := isn[client]; !ok {
					t.Fatalf("oracle saw no SYN from port %d", client)
				}
				if !reflect.DeepEqual(e, want) {
					t.Errorf("reset %d:\n- %+v\n+ %+v", i, want, e)
				}
				if time.Since(e.Time) > 10*time.Second || e.Time.After(time.Now()) {
					t.Errorf("reset %d: kernel timestamp %v is not recent", i, e.Time)
				}
			}
			if d := s.Duplicates(); d != 0 {
				t.Errorf("user-space dedup dropped %d loopback packets; the kernel filter should have", d)
			}
		})
	}
}

// vethPair makes two namespaces joined by va (in a: 198.18.0.1, fd52::1)
// and vb (in b: 198.18.0.2, fd52::2).
func vethPair(t *testing.T) (a, b *netnstest.NS) {
	t.Helper()
	a, b = netnstest.New(t), netnstest.New(t)
	netnstest.Link(t, a, "va", []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("fd52::1/64")},
		b, "vb", []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24"), netip.MustParsePrefix("fd52::2/64")})
	return a, b
}

func TestIntegrationVethDirection(t *testing.T) {
	a, b := vethPair(t)
	sa := openIn(t, a, sniff.Config{})
	sb := openIn(t, b, sniff.Config{})
	for i, server := range []netip.AddrPort{netip.MustParseAddrPort("198.18.0.1:7211"), netip.MustParseAddrPort("[fd52::1]:7211")} {
		client := netip.AddrPortFrom(netip.MustParseAddr(map[bool]string{true: "198.18.0.2", false: "fd52::2"}[server.Addr().Is4()]), uint16(42000+i))
		snifftest.Refuse(t, b, client, server)
		for _, side := range []struct {
			name   string
			s      *sniff.Sniffer
			ifname string
			dir    sniff.Direction
		}{{"A (refusing)", sa, "va", sniff.Out}, {"B (client)", sb, "vb", sniff.In}} {
			got := collect(t, side.s, 2, 500*time.Millisecond)
			if len(got) != 1 {
				t.Fatalf("%s captured %d resets, want 1", side.name, len(got))
			}
			e := got[0]
			if e.Direction != side.dir || e.Ifname != side.ifname || e.Src != server || e.Dst != client || e.Flags != sniff.FlagRST|sniff.FlagACK {
				t.Errorf("%s: got %s %s %v > %v [%s], want %s %s %v > %v [R.]", side.name,
					e.Ifname, e.Direction, e.Src, e.Dst, e.Flags, side.ifname, side.dir, server, client)
			}
		}
	}
}

func TestIntegrationNoResetNoOutput(t *testing.T) {
	ns := netnstest.New(t)
	s := openIn(t, ns, sniff.Config{})
	var ln net.Listener
	ns.Do(t, func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return err })
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		// Read everything before closing: closing with unread data would
		// (rightly) send a reset.
		_, err = io.Copy(c, c)
		c.Close()
		done <- err
	}()
	ns.Do(t, func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		if _, err := c.Write([]byte("hello, no reset please")); err != nil {
			return err
		}
		c.(*net.TCPConn).CloseWrite()
		if _, err := io.ReadAll(c); err != nil {
			return err
		}
		return c.Close()
	})
	if err := <-done; err != nil {
		t.Fatalf("failed to serve: %v", err)
	}
	if got := collect(t, s, 1, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("a clean FIN close produced %d events, first %+v", len(got), got[0])
	}
	if st, err := s.Stats(); err != nil || st.Packets != 0 {
		t.Fatalf("kernel filter passed %d packets (err %v), want 0", st.Packets, err)
	}
}

func TestIntegrationFilterNarrowsInKernel(t *testing.T) {
	tests := []struct {
		name   string
		filter filter.Options
		want   []netip.AddrPort // servers whose resets must arrive
	}{
		{"port", filter.Options{Ports: []uint16{7211}}, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:7211"), netip.MustParseAddrPort("[::1]:7211")}},
		{"host_ipv6", filter.Options{Hosts: []netip.Addr{netip.MustParseAddr("::1")}}, []netip.AddrPort{netip.MustParseAddrPort("[::1]:7211"), netip.MustParseAddrPort("[::1]:7212")}},
		{"host_ipv4_and_port", filter.Options{Hosts: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Ports: []uint16{7212}}, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:7212")}},
	}
	servers := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:7211"), netip.MustParseAddrPort("127.0.0.1:7212"),
		netip.MustParseAddrPort("[::1]:7211"), netip.MustParseAddrPort("[::1]:7212"),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := netnstest.New(t)
			s := openIn(t, ns, sniff.Config{Filter: tt.filter})
			const rounds = 3
			for r := range rounds {
				for i, srv := range servers {
					snifftest.Refuse(t, ns, netip.AddrPortFrom(srv.Addr(), uint16(43000+r*10+i)), srv)
				}
			}
			// PACKET_STATISTICS counts what passed the kernel filter: the
			// other resets never reached user space.
			st, err := s.Stats()
			if err != nil {
				t.Fatalf("failed to read stats: %v", err)
			}
			if want := uint64(rounds * len(tt.want)); st.Packets != want {
				t.Fatalf("kernel filter passed %d packets, want %d", st.Packets, want)
			}
			got := collect(t, s, rounds*len(servers), 300*time.Millisecond)
			if len(got) != rounds*len(tt.want) {
				t.Fatalf("read %d resets, want %d", len(got), rounds*len(tt.want))
			}
			for _, e := range got {
				ok := false
				for _, w := range tt.want {
					ok = ok || e.Src == w
				}
				if !ok {
					t.Errorf("reset from %v passed the filter", e.Src)
				}
			}
		})
	}
}

// TestIntegrationForwardedOnce routes a refused connect through a router
// namespace, which sees the reset on both of its interfaces, and checks that
// Next reports it once.
func TestIntegrationForwardedOnce(t *testing.T) {
	a, r, b := netnstest.New(t), netnstest.New(t), netnstest.New(t)
	netnstest.Link(t, a, "va", []netip.Prefix{netip.MustParsePrefix("198.18.1.1/24")}, r, "ra", []netip.Prefix{netip.MustParsePrefix("198.18.1.254/24")})
	netnstest.Link(t, b, "vb", []netip.Prefix{netip.MustParsePrefix("198.18.2.1/24")}, r, "rb", []netip.Prefix{netip.MustParsePrefix("198.18.2.254/24")})
	a.IP(t, "route", "add", "default", "via", "198.18.1.254")
	b.IP(t, "route", "add", "default", "via", "198.18.2.254")
	r.Sysctl(t, "net.ipv4.ip_forward", "1")
	s := openIn(t, r, sniff.Config{})

	const attempts = 5
	for i := range attempts {
		snifftest.Refuse(t, b, netip.AddrPortFrom(netip.MustParseAddr("198.18.2.1"), uint16(44000+i)), netip.MustParseAddrPort("198.18.1.1:7211"))
	}
	got := collect(t, s, 2*attempts, 500*time.Millisecond)
	if len(got) != attempts {
		t.Fatalf("router reported %d resets for %d refused connects, want one each", len(got), attempts)
	}
	if d := s.Duplicates(); d != attempts {
		t.Errorf("suppressed %d forwarded copies, want %d", d, attempts)
	}
	for _, e := range got {
		if e.Ifname != "ra" || e.Direction != sniff.In {
			t.Errorf("first sighting on %s %s, want ra in", e.Ifname, e.Direction)
		}
	}
}

func TestIntegrationReadPathAllocs(t *testing.T) {
	t.Run("ring", func(t *testing.T) { testReadPathAllocs(t, sniff.Config{}) })
	t.Run("recvmmsg", func(t *testing.T) { testReadPathAllocs(t, sniff.Config{NoRing: true}) })
}

func testReadPathAllocs(t *testing.T, cfg sniff.Config) {
	ns := netnstest.New(t)
	s := openIn(t, ns, cfg)
	const n = 300
	server := netip.MustParseAddrPort("127.0.0.1:7211")
	ns.Do(t, func() error {
		// Raw non-blocking connects are cheaper than net.Dial for a burst.
		for i := range n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return err
			}
			err = unix.Connect(fd, &unix.SockaddrInet4{Port: 7211, Addr: server.Addr().As4()})
			unix.Close(fd)
			if err != nil && err != unix.EINPROGRESS && err != unix.ECONNREFUSED {
				return fmt.Errorf("connect %d: %v", i, err)
			}
		}
		return nil
	})
	if err := s.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var e sniff.Event
	allocs := testing.AllocsPerRun(n-50, func() {
		if err := s.Next(&e); err != nil {
			t.Fatalf("failed to read: %v", err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Next allocates %v times per packet, want 0", allocs)
	}
}

// TestIntegrationSnaplen checks that a reset longer than the snaplen is cut
// while Len keeps its length on the wire.
func TestIntegrationSnaplen(t *testing.T) {
	ns := netnstest.New(t)
	s := openIn(t, ns, sniff.Config{Filter: filter.Options{Snaplen: 64}})
	// Send a crafted RST with a 100-byte payload to ourselves on lo.
	pkt := rawRST(100)
	sendRaw(t, ns, 1, func(int) []byte { return pkt })
	got := collect(t, s, 1, time.Second)
	if len(got) != 1 {
		t.Fatalf("captured %d packets, want 1", len(got))
	}
	if got[0].Len != len(pkt) || got[0].PayloadLen != 100 {
		t.Fatalf("Len %d PayloadLen %d, want %d and 100", got[0].Len, got[0].PayloadLen, len(pkt))
	}
}
