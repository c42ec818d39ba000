//go:build linux

package filter_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/proc/netns/netnstest"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The integration tests run the whole Kernel program in the real kernel.
// They need CAP_SYS_ADMIN (network namespaces) and CAP_NET_RAW (packet
// sockets), and send traffic only inside the namespaces they create.

// listenIn opens a SOCK_DGRAM packet socket for all protocols on all
// interfaces of ns, with raw attached before bind (mdlayher/packet does that
// for Config.Filter), and closes it when the test ends.
func listenIn(t *testing.T, ns *netnstest.NS, raw []bpf.RawInstruction) *packet.Conn {
	t.Helper()
	var (
		c   *packet.Conn
		err error
	)
	// fn runs on another goroutine: report errors back instead of calling
	// t.Fatal there.
	ns.Do(t, func() error {
		c, err = packet.Listen(&net.Interface{Index: 0}, packet.Datagram, unix.ETH_P_ALL, &packet.Config{Filter: raw})
		return nil
	})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			t.Skipf("skipping, permission denied opening a packet socket (need CAP_NET_RAW): %v", err)
		}
		t.Fatalf("failed to open packet socket: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	// Room for every packet a test sends, so that nothing is dropped.
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
		})
	}
	return c
}

func mustAssembleRaw(t *testing.T, prog []bpf.Instruction) []bpf.RawInstruction {
	t.Helper()
	raw, err := bpf.Assemble(prog)
	if err != nil {
		t.Fatalf("failed to assemble program: %v", err)
	}
	return raw
}

func mustAssemble(t *testing.T, o filter.Options) []bpf.RawInstruction {
	t.Helper()
	raw, err := filter.Assemble(o)
	if err != nil {
		t.Fatalf("failed to assemble program: %v", err)
	}
	return raw
}

// captured is one packet as recvfrom(2) returned it.
type captured struct {
	data     []byte
	ifindex  int
	pkttype  uint8
	hatype   uint16
	protocol uint16 // ethertype, host byte order
}

// collect reads from c until want packets have arrived and linger has
// passed since, or until a 5 s deadline (want < 0: read for 1 s). It uses
// recvfrom(2) directly because packet.Conn.ReadFrom does not report pkttype.
func collect(t *testing.T, c *packet.Conn, want int, linger time.Duration) []captured {
	t.Helper()
	out, err := receive(c, want, linger)
	if err != nil {
		t.Fatalf("failed to receive: %v", err)
	}
	return out
}

// result is what receive returns, for goroutines that must not call t.Fatal.
type result struct {
	got []captured
	err error
}

func receiveAsync(c *packet.Conn, want int, linger time.Duration) <-chan result {
	ch := make(chan result, 1)
	go func() {
		got, err := receive(c, want, linger)
		ch <- result{got, err}
	}()
	return ch
}

func receive(c *packet.Conn, want int, linger time.Duration) ([]captured, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(5 * time.Second)
	switch {
	case want == 0:
		deadline = time.Now().Add(linger)
	case want < 0:
		deadline = time.Now().Add(time.Second)
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	buf := make([]byte, 1<<16)
	var out []captured
	for {
		var (
			n    int
			from unix.Sockaddr
			rerr error
		)
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			return rerr != unix.EAGAIN
		})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out, nil
		}
		if err == nil {
			err = rerr
		}
		if err != nil {
			return out, err
		}
		sa, ok := from.(*unix.SockaddrLinklayer)
		if !ok {
			return out, fmt.Errorf("unexpected address %T", from)
		}
		var proto [2]byte
		binary.NativeEndian.PutUint16(proto[:], sa.Protocol) // network byte order in memory
		out = append(out, captured{
			data:     bytes.Clone(buf[:n]),
			ifindex:  sa.Ifindex,
			pkttype:  sa.Pkttype,
			hatype:   sa.Hatype,
			protocol: be.Uint16(proto[:]),
		})
		if len(out) == want {
			if err := c.SetReadDeadline(time.Now().Add(linger)); err != nil {
				return out, err
			}
		}
	}
}

// checkNoDrops fails if the socket dropped packets, which would make a
// missing packet look like a filter verdict.
func checkNoDrops(t *testing.T, name string, c *packet.Conn) {
	t.Helper()
	st, err := c.Stats()
	if err != nil {
		t.Fatalf("failed to read statistics: %v", err)
	}
	if st.Drops != 0 {
		t.Fatalf("%s: socket dropped %d packets", name, st.Drops)
	}
}

// interfaceIn returns the named interface of ns.
func interfaceIn(t *testing.T, ns *netnstest.NS, name string) *net.Interface {
	t.Helper()
	var ifi *net.Interface
	ns.Do(t, func() error {
		var err error
		ifi, err = net.InterfaceByName(name)
		return err
	})
	return ifi
}

// senders opens one SOCK_DGRAM packet socket per ethertype on the named
// interface of ns: a datagram send takes sll_protocol from the socket
// (packet(7); mdlayher/packet's WriteTo uses the bound protocol).
func senders(t *testing.T, ns *netnstest.NS, ifName string, types ...uint16) map[uint16]*packet.Conn {
	t.Helper()
	out := make(map[uint16]*packet.Conn)
	var err error
	ns.Do(t, func() error {
		ifi, ierr := net.InterfaceByName(ifName)
		if ierr != nil {
			return ierr
		}
		for _, et := range types {
			var c *packet.Conn
			if c, err = packet.Listen(ifi, packet.Datagram, int(et), nil); err != nil {
				return nil
			}
			out[et] = c
		}
		return nil
	})
	for _, c := range out {
		t.Cleanup(func() { _ = c.Close() })
	}
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			t.Skipf("skipping, permission denied opening a packet socket (need CAP_NET_RAW): %v", err)
		}
		t.Fatalf("failed to open sending packet socket: %v", err)
	}
	return out
}

// vethPair links two fresh namespaces with a veth pair va (198.18.0.1,
// fd52::1) - vb (198.18.0.2, fd52::2), with a 9000-byte MTU so that the
// largest test packet fits, and forwarding off in b: test packets are
// addressed to documentation prefixes that b neither owns nor routes, so
// its stack never answers them with TCP.
func vethPair(t *testing.T) (a, b *netnstest.NS) {
	t.Helper()
	a, b = netnstest.New(t), netnstest.New(t)
	netnstest.Link(t,
		a, "va", []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("fd52::1/64")},
		b, "vb", []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24"), netip.MustParsePrefix("fd52::2/64")})
	a.IP(t, "link", "set", "va", "mtu", "9000")
	b.IP(t, "link", "set", "vb", "mtu", "9000")
	b.Sysctl(t, "net.ipv4.ip_forward", "0")
	b.Sysctl(t, "net.ipv6.conf.all.forwarding", "0")
	return a, b
}

// TestIntegrationKernelMatchesVM sends every packet of the VM table over a
// veth pair and checks, for every option set, that the kernel running the
// whole Kernel program delivers exactly the packets that the VM running
// Core accepts, truncated to the snap length.
func TestIntegrationKernelMatchesVM(t *testing.T) {
	a, b := vethPair(t)

	type capture struct {
		name string
		opts filter.Options
		vm   *bpf.VM
		c    *packet.Conn
	}
	var caps []*capture
	for _, s := range optionSets {
		core, err := filter.Core(s.opts)
		if err != nil {
			t.Fatalf("failed to build program %s: %v", s.name, err)
		}
		vm, err := bpf.NewVM(core)
		if err != nil {
			t.Fatalf("failed to load program %s into VM: %v", s.name, err)
		}
		caps = append(caps, &capture{s.name, s.opts, vm, listenIn(t, b, mustAssemble(t, s.opts))})
	}

	type probe struct {
		name  string
		ether uint16
		pkt   []byte
	}
	var probes []probe
	for _, tt := range vmCases {
		p := tt.packet()
		et := uint16(etherIPv4) // also for packets that are not IP at all
		if len(p) > 0 && p[0]>>4 == 6 {
			et = etherIPv6
		}
		probes = append(probes, probe{tt.name, et, p})
	}
	// The prologue's ethertype check: Core alone would accept these.
	probes = append(probes,
		probe{"ipv4_rst_as_arp", etherARP, rst4},
		probe{"ipv6_rst_as_arp", etherARP, rst6},
	)

	// Expected deliveries per option set, as a multiset of captured bytes
	// (several probes may share bytes); names for the error messages.
	type want struct {
		count map[string]int
		total int
	}
	names := make(map[string][]string)
	wants := make([]want, len(caps))
	for i, c := range caps {
		wants[i].count = make(map[string]int)
		for _, p := range probes {
			got, err := c.vm.Run(p.pkt)
			if err != nil {
				t.Fatalf("failed to run program %s: %v", c.name, err)
			}
			if got == 0 || p.ether == etherARP {
				continue
			}
			k := string(p.pkt[:min(len(p.pkt), got)])
			wants[i].count[k]++
			wants[i].total++
		}
	}
	for _, p := range probes {
		for _, c := range caps {
			k := string(p.pkt[:min(len(p.pkt), int(snaplen(c.opts)))])
			if !slices.Contains(names[k], p.name) {
				names[k] = append(names[k], p.name)
			}
		}
	}

	// A control socket that accepts everything proves that every probe
	// reached b, so that a missing packet is a verdict and not a loss.
	control := listenIn(t, b, mustAssembleRaw(t, []bpf.Instruction{bpf.RetConstant{Val: 1 << 16}}))
	controlDone := receiveAsync(control, -1, 0)

	// Read concurrently with sending so no socket buffer fills up.
	results := make([]<-chan result, len(caps))
	for i, c := range caps {
		results[i] = receiveAsync(c.c, wants[i].total, 300*time.Millisecond)
	}

	send := senders(t, a, "va", etherIPv4, etherIPv6, etherARP)
	vb := interfaceIn(t, b, "vb")
	to := &packet.Addr{HardwareAddr: vb.HardwareAddr}
	for _, p := range probes {
		if _, err := send[p.ether].WriteTo(p.pkt, to); err != nil {
			t.Fatalf("failed to send %s (%d bytes): %v", p.name, len(p.pkt), err)
		}
	}

	ctl := <-controlDone
	if ctl.err != nil {
		t.Fatalf("failed to receive on control socket: %v", ctl.err)
	}
	arrived := make(map[string]int)
	for _, g := range ctl.got {
		if g.ifindex == vb.Index {
			arrived[string(g.data)]++
		}
	}
	checkNoDrops(t, "control", control)
	sentCount := make(map[string]int)
	for _, p := range probes {
		sentCount[string(p.pkt)]++
	}
	for k, n := range sentCount {
		if arrived[k] < n {
			t.Fatalf("failed to deliver probe %s to namespace b: %d of %d arrived", strings.Join(names[k], "|"), arrived[k], n)
		}
	}

	for i, c := range caps {
		r := <-results[i]
		if r.err != nil {
			t.Fatalf("failed to receive on %s socket: %v", c.name, r.err)
		}
		got := r.got
		checkNoDrops(t, c.name, c.c)
		count := make(map[string]int)
		for _, g := range got {
			count[string(g.data)]++
			if g.ifindex != vb.Index {
				t.Errorf("%s: packet from ifindex %d, want %d (vb)", c.name, g.ifindex, vb.Index)
			}
		}
		var diff []string
		for k, n := range wants[i].count {
			if count[k] < n {
				diff = append(diff, fmt.Sprintf("-%s (accepted by the VM, not delivered by the kernel)", strings.Join(names[k], "|")))
			}
		}
		for k, n := range count {
			if wants[i].count[k] < n {
				nm := names[k]
				if nm == nil {
					nm = []string{fmt.Sprintf("unknown packet % x", k)}
				}
				diff = append(diff, fmt.Sprintf("+%s (delivered by the kernel, rejected by the VM)", strings.Join(nm, "|")))
			}
		}
		slices.Sort(diff)
		if len(diff) > 0 {
			t.Errorf("option set %s: kernel and VM disagree (-want +got):\n%s", c.name, strings.Join(diff, "\n"))
			continue
		}
		t.Logf("option set %s: kernel delivered %d of %d probes, as the VM predicted", c.name, len(got), len(probes))
	}
}

// tcpInfo decodes the fields the loopback tests check from a captured packet
// without extension headers.
func tcpInfo(t *testing.T, p []byte) (version int, sport, dport uint16, flags byte) {
	t.Helper()
	off := 40
	version = int(p[0] >> 4)
	if version == 4 {
		off = int(p[0]&0x0f) * 4
	}
	if len(p) < off+14 {
		t.Fatalf("failed to decode captured packet: too short: % x", p)
	}
	return version, be.Uint16(p[off:]), be.Uint16(p[off+2:]), p[off+13]
}

// refuse makes n connection attempts to each address, all of which must be
// refused: each produces one SYN and one RST|ACK on lo.
func refuse(t *testing.T, ns *netnstest.NS, n int, addrs ...string) {
	t.Helper()
	ns.Do(t, func() error {
		for _, addr := range addrs {
			for range n {
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err == nil {
					_ = c.Close()
					return fmt.Errorf("connect to %s succeeded, want ECONNREFUSED", addr)
				}
				if !errors.Is(err, syscall.ECONNREFUSED) {
					return fmt.Errorf("connect to %s: %w, want ECONNREFUSED", addr, err)
				}
			}
		}
		return nil
	})
}

// TestIntegrationLoopbackDedup checks that each refused connect on
// 127.0.0.1 and [::1] yields exactly one captured RST, the PACKET_OUTGOING
// copy, while Core alone sees both loopback copies.
func TestIntegrationLoopbackDedup(t *testing.T) {
	const (
		port     = 9 // nobody listens in a fresh namespace
		connects = 5
	)
	ns := netnstest.New(t)
	rstOnly := filter.Options{Ports: []uint16{port}}
	kernel := listenIn(t, ns, mustAssemble(t, rstOnly))
	withSYN := listenIn(t, ns, mustAssemble(t, filter.Options{Ports: []uint16{port}, SYN: true}))
	core, err := filter.Core(rstOnly)
	if err != nil {
		t.Fatalf("failed to build core program: %v", err)
	}
	rawCore, err := bpf.Assemble(core)
	if err != nil {
		t.Fatalf("failed to assemble core program: %v", err)
	}
	coreOnly := listenIn(t, ns, rawCore)
	lo := interfaceIn(t, ns, "lo")

	refuse(t, ns, connects, fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("[::1]:%d", port))

	// key counts packets by family, flags and pkttype.
	type key struct {
		version int
		flags   byte
		pkttype uint8
	}
	tally := func(name string, c *packet.Conn, want map[key]int) {
		t.Helper()
		total := 0
		for _, n := range want {
			total += n
		}
		got := make(map[key]int)
		for _, g := range collect(t, c, total, 300*time.Millisecond) {
			v, sport, dport, flags := tcpInfo(t, g.data)
			got[key{v, flags, g.pkttype}]++
			if g.ifindex != lo.Index || g.hatype != unix.ARPHRD_LOOPBACK {
				t.Errorf("%s: packet on ifindex %d hatype %d, want lo (%d, %d)", name, g.ifindex, g.hatype, lo.Index, unix.ARPHRD_LOOPBACK)
			}
			wantProto := uint16(etherIPv4)
			if v == 6 {
				wantProto = etherIPv6
			}
			if g.protocol != wantProto {
				t.Errorf("%s: sll_protocol %#04x, want %#04x", name, g.protocol, wantProto)
			}
			if sport != port && dport != port {
				t.Errorf("%s: ports %d -> %d, want %d on one side", name, sport, dport, port)
			}
		}
		checkNoDrops(t, name, c)
		if !equalCounts(want, got) {
			t.Errorf("%s: unexpected packets by (version, flags, pkttype) (-want +got):\n-%v\n+%v", name, want, got)
		}
	}

	const rstAck, syn = flagRST | flagACK, flagSYN
	out, host := uint8(unix.PACKET_OUTGOING), uint8(unix.PACKET_HOST)
	tally("kernel", kernel, map[key]int{
		{4, rstAck, out}: connects,
		{6, rstAck, out}: connects,
	})
	tally("kernel_syn", withSYN, map[key]int{
		{4, syn, out}: connects, {4, rstAck, out}: connects,
		{6, syn, out}: connects, {6, rstAck, out}: connects,
	})
	// Without the prologue both copies arrive: the premise of the dedup.
	tally("core_only", coreOnly, map[key]int{
		{4, rstAck, out}: connects, {4, rstAck, host}: connects,
		{6, rstAck, out}: connects, {6, rstAck, host}: connects,
	})
}

func equalCounts[K comparable](want, got map[K]int) bool {
	if len(want) != len(got) {
		return false
	}
	for k, n := range want {
		if got[k] != n {
			return false
		}
	}
	return true
}

// TestIntegrationInterfaces checks the ifindex clause: a RST on lo and one
// arriving on vb are each delivered only to the sockets that list their
// interface.
func TestIntegrationInterfaces(t *testing.T) {
	const port = 9
	a, b := vethPair(t)
	lo, vb := interfaceIn(t, b, "lo"), interfaceIn(t, b, "vb")

	tests := []struct {
		name   string
		ifaces []int
		want   []int // ifindexes, in arrival order
	}{
		{"lo_only", []int{lo.Index}, []int{lo.Index}},
		{"vb_only", []int{vb.Index}, []int{vb.Index}},
		{"both", []int{vb.Index, lo.Index}, []int{lo.Index, vb.Index}},
		{"all", nil, []int{lo.Index, vb.Index}},
		{"neither", []int{lo.Index + vb.Index + 100}, nil},
	}
	conns := make([]*packet.Conn, len(tests))
	for i, tt := range tests {
		conns[i] = listenIn(t, b, mustAssemble(t, filter.Options{Interfaces: tt.ifaces, Ports: []uint16{port}}))
	}

	// First a RST on lo, then one from a over the veth pair.
	refuse(t, b, 1, fmt.Sprintf("127.0.0.1:%d", port))
	send := senders(t, a, "va", etherIPv4)
	rst := ipv4Packet(src4, dst4, nhTCP, nil, tcpHeader(port, 40000, flagRST, 0))
	if _, err := send[etherIPv4].WriteTo(rst, &packet.Addr{HardwareAddr: vb.HardwareAddr}); err != nil {
		t.Fatalf("failed to send RST: %v", err)
	}

	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			for _, g := range collect(t, conns[i], len(tt.want), 300*time.Millisecond) {
				got = append(got, g.ifindex)
			}
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(want, got) {
				t.Fatalf("unexpected interfaces (-want +got):\n-%v\n+%v", want, got)
			}
		})
	}
}

// TestIntegrationLargestProgram attaches the largest program Options allow:
// the kernel's classic BPF checker must accept it.
func TestIntegrationLargestProgram(t *testing.T) {
	ns := netnstest.New(t)
	var hosts []netip.Addr
	for i := range filter.MaxHosts {
		hosts = append(hosts, netip.AddrFrom16([16]byte{0xfd, 0x52, 15: byte(i)}))
	}
	var ifaces []int
	for i := range filter.MaxInterfaces {
		ifaces = append(ifaces, i+1)
	}
	raw := mustAssemble(t, filter.Options{
		Ports:      manyPorts(filter.MaxPorts, 80),
		Hosts:      hosts,
		SYN:        true,
		Interfaces: ifaces,
	})
	_ = listenIn(t, ns, raw)
	t.Logf("kernel accepted a %d-instruction program", len(raw))
}
