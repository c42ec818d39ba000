package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/rstwatch/rstwatch/proc/netns"
)

// Addresses inside the veth pair (RFC 2544 benchmarking range, ULA).
var (
	txAddr4 = netip.MustParseAddr("198.18.0.1")
	rxAddr4 = netip.MustParseAddr("198.18.0.2")
	txAddr6 = netip.MustParseAddr("fd52::1")
	rxAddr6 = netip.MustParseAddr("fd52::2")
)

// Interface names inside the namespaces; they cannot clash with the host's.
const (
	txIf = "storm0"
	rxIf = "storm1"
)

// namespace is a network namespace this process created.
type namespace struct{ name string }

func (ns namespace) path() string { return "/run/netns/" + ns.name }

// newNamespace creates a network namespace with its loopback up.
func newNamespace(name string) (namespace, error) {
	if err := ipCmd("netns", "add", name); err != nil {
		return namespace{}, err
	}
	ns := namespace{name}
	if err := ipCmd("-n", name, "link", "set", "lo", "up"); err != nil {
		ns.remove()
		return namespace{}, err
	}
	return ns, nil
}

// remove deletes the namespace and everything in it (the veth pair dies
// with it).
func (ns namespace) remove() { _ = ipCmd("netns", "del", ns.name) }

// pair is the storm's two namespaces joined by a veth pair.
type pair struct {
	tx, rx         namespace
	txMAC, rxMAC   net.HardwareAddr
	txIdx, rxIndex int
}

// newPair creates prefix-tx and prefix-rx, the veth pair between them, the
// addresses, and static neighbour entries both ways, so that no ARP or
// neighbour discovery delays or drops the first packets.
func newPair(prefix string) (_ *pair, err error) {
	p := &pair{}
	if p.tx, err = newNamespace(prefix + "-tx"); err != nil {
		return nil, err
	}
	if p.rx, err = newNamespace(prefix + "-rx"); err != nil {
		p.tx.remove()
		return nil, err
	}
	defer func() {
		if err != nil {
			p.remove()
		}
	}()
	if err = ipCmd("link", "add", txIf, "netns", p.tx.name, "type", "veth", "peer", "name", rxIf, "netns", p.rx.name); err != nil {
		return nil, err
	}
	for _, side := range []struct {
		ns     namespace
		ifname string
		a4, a6 netip.Addr
	}{{p.tx, txIf, txAddr4, txAddr6}, {p.rx, rxIf, rxAddr4, rxAddr6}} {
		if err = ipCmd("-n", side.ns.name, "addr", "add", side.a4.String()+"/24", "dev", side.ifname); err != nil {
			return nil, err
		}
		if err = ipCmd("-n", side.ns.name, "addr", "add", side.a6.String()+"/64", "dev", side.ifname, "nodad"); err != nil {
			return nil, err
		}
		if err = ipCmd("-n", side.ns.name, "link", "set", side.ifname, "up"); err != nil {
			return nil, err
		}
	}
	if p.txMAC, p.txIdx, err = linkOf(p.tx, txIf); err != nil {
		return nil, err
	}
	if p.rxMAC, p.rxIndex, err = linkOf(p.rx, rxIf); err != nil {
		return nil, err
	}
	for _, n := range []struct {
		ns     namespace
		ifname string
		a4, a6 netip.Addr
		mac    net.HardwareAddr
	}{{p.tx, txIf, rxAddr4, rxAddr6, p.rxMAC}, {p.rx, rxIf, txAddr4, txAddr6, p.txMAC}} {
		for _, a := range []netip.Addr{n.a4, n.a6} {
			if err = ipCmd("-n", n.ns.name, "neigh", "replace", a.String(), "lladdr", n.mac.String(), "dev", n.ifname, "nud", "permanent"); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

func (p *pair) remove() {
	p.tx.remove()
	p.rx.remove()
}

// linkOf returns the hardware address and index of an interface in ns.
func linkOf(ns namespace, name string) (mac net.HardwareAddr, index int, err error) {
	err = netns.Do(ns.path(), func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		mac, index = ifi.HardwareAddr, ifi.Index
		return nil
	})
	return mac, index, err
}

// tcpCounters reads the Tcp: line of ns's /proc/net/snmp (it counts IPv4
// and IPv6 alike).
func tcpCounters(ns namespace) (map[string]uint64, error) {
	var b []byte
	err := netns.Do(ns.path(), func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	})
	if err != nil {
		return nil, err
	}
	var names []string
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, v := range f[1:] {
			if i < len(names) {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[names[i]] = uint64(n)
			}
		}
	}
	if names == nil {
		return nil, fmt.Errorf("no Tcp: counters in %s's /proc/net/snmp", ns.name)
	}
	return out, nil
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
