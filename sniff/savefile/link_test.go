package savefile_test

import (
	"bytes"
	"testing"

	"github.com/rstwatch/rstwatch/sniff/savefile"
)

// fddi returns an FDDI frame with frame control fc.
func fddi(fc byte, payload []byte) []byte {
	return cat([]byte{fc}, make([]byte, 12), payload)
}

// tokenRing returns a Token Ring LLC frame, with a 6-byte routing
// information field when rif is set.
func tokenRing(rif bool, payload []byte) []byte {
	h := []byte{0x10, 0x40, 0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2}
	if rif {
		h[8] |= 0x80
		h = append(h, 0x06, 0x30, 0x01, 0x10, 0x02, 0x20)
	}
	return cat(h, payload)
}

// wlan returns an 802.11 frame with frame control fc0, fc1: four
// addresses when both DS bits are set, QoS control for QoS subtypes.
func wlan(fc0, fc1 byte, body []byte) []byte {
	h := cat([]byte{fc0, fc1, 0, 0}, make([]byte, 18), []byte{0x10, 0})
	if fc1&3 == 3 {
		h = cat(h, make([]byte, 6))
	}
	if fc0&0x80 != 0 && fc0&0x0c == 0x08 {
		h = cat(h, []byte{0, 0})
	}
	return cat(h, body)
}

// radiotapHdr returns a radiotap header with TSFT and Flags (data pad when
// pad is set) around an 802.11 frame.
func radiotapHdr(pad bool, frame []byte) []byte {
	flags := byte(0)
	if pad {
		flags = 0x20
	}
	h := cat([]byte{0, 0, 18, 0, 0x03, 0, 0, 0}, make([]byte, 8), []byte{flags, 0})
	return cat(h, frame)
}

// sll returns a LINUX_SLL frame.
func sll(pkttype, hatype, proto uint16, payload []byte) []byte {
	b := be.AppendUint16(nil, pkttype)
	b = be.AppendUint16(b, hatype)
	b = be.AppendUint16(b, 6)                // address length
	b = append(b, 0x02, 0, 0, 0, 0, 9, 0, 0) // address, padded to 8
	b = be.AppendUint16(b, proto)
	return append(b, payload...)
}

// sll2 returns a LINUX_SLL2 frame.
func sll2(proto uint16, ifindex uint32, hatype uint16, pkttype byte, payload []byte) []byte {
	b := be.AppendUint16(nil, proto)
	b = be.AppendUint16(b, 0) // reserved
	b = be.AppendUint32(b, ifindex)
	b = be.AppendUint16(b, hatype)
	b = append(b, pkttype, 6)                // packet type, address length
	b = append(b, 0x02, 0, 0, 0, 0, 9, 0, 0) // address, padded to 8
	return append(b, payload...)
}

func TestNetwork(t *testing.T) {
	v4 := savefile.LinkInfo{EtherType: savefile.EtherTypeIPv4}
	v6 := savefile.LinkInfo{EtherType: savefile.EtherTypeIPv6}
	snap := []byte{0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00}
	snap6 := []byte{0xaa, 0xaa, 0x03, 0, 0, 0, 0x86, 0xdd}
	tests := []struct {
		name string
		lt   savefile.LinkType
		data []byte
		ip   []byte // nil: ok is false
		info savefile.LinkInfo
	}{
		{name: "ethernet ipv4", lt: savefile.LinkTypeEthernet, data: ether(savefile.EtherTypeIPv4, ipv4RST), ip: ipv4RST, info: v4},
		{name: "ethernet ipv6", lt: savefile.LinkTypeEthernet, data: ether(savefile.EtherTypeIPv6, ipv6RST), ip: ipv6RST, info: v6},
		{
			name: "ethernet 802.1Q", lt: savefile.LinkTypeEthernet,
			data: ether(savefile.EtherTypeIPv4, ipv4RST, 0x8100), ip: ipv4RST,
			info: savefile.LinkInfo{EtherType: savefile.EtherTypeIPv4, VLANTags: 1, VLAN: 100},
		},
		{
			name: "ethernet 802.1ad QinQ", lt: savefile.LinkTypeEthernet,
			data: ether(savefile.EtherTypeIPv6, ipv6RST, 0x88a8, 0x8100), ip: ipv6RST,
			info: savefile.LinkInfo{EtherType: savefile.EtherTypeIPv6, VLANTags: 2, VLAN: 100},
		},
		{
			name: "ethernet 0x9100 three tags", lt: savefile.LinkTypeEthernet,
			data: ether(savefile.EtherTypeIPv4, ipv4RST, 0x9100, 0x9100, 0x8100), ip: ipv4RST,
			info: savefile.LinkInfo{EtherType: savefile.EtherTypeIPv4, VLANTags: 3, VLAN: 100},
		},
		{name: "ethernet LLC/SNAP", lt: savefile.LinkTypeEthernet, data: ether(48, cat(snap, ipv4RST)), ip: ipv4RST, info: v4},
		{name: "ethernet LLC not SNAP", lt: savefile.LinkTypeEthernet, data: ether(48, cat([]byte{0x42, 0x42, 0x03, 0, 0, 0, 0x08, 0x00}, ipv4RST))},
		{name: "ethernet arp", lt: savefile.LinkTypeEthernet, data: ether(0x0806, make([]byte, 28))},
		{name: "ethernet ipv4 ethertype, ipv6 packet", lt: savefile.LinkTypeEthernet, data: ether(savefile.EtherTypeIPv4, ipv6RST)},
		{name: "ethernet no payload", lt: savefile.LinkTypeEthernet, data: ether(savefile.EtherTypeIPv4, nil)},
		{name: "ethernet short", lt: savefile.LinkTypeEthernet, data: ether(savefile.EtherTypeIPv4, nil)[:13]},
		{name: "ethernet truncated tag", lt: savefile.LinkTypeEthernet, data: ether(savefile.EtherTypeIPv4, nil, 0x8100)[:16]},
		{
			name: "sll incoming", lt: savefile.LinkTypeLinuxSLL, data: sll(0, 1, savefile.EtherTypeIPv4, ipv4RST), ip: ipv4RST,
			info: savefile.LinkInfo{EtherType: savefile.EtherTypeIPv4, Direction: savefile.DirectionInbound, HAType: 1},
		},
		{
			name: "sll outgoing ipv6", lt: savefile.LinkTypeLinuxSLL, data: sll(4, 772, savefile.EtherTypeIPv6, ipv6RST), ip: ipv6RST,
			info: savefile.LinkInfo{EtherType: savefile.EtherTypeIPv6, Direction: savefile.DirectionOutbound, PktType: 4, HAType: 772},
		},
		{
			name: "sll otherhost with vlan", lt: savefile.LinkTypeLinuxSLL, data: sll(3, 1, 0x8100, cat([]byte{0, 7, 0x08, 0x00}, ipv4RST)), ip: ipv4RST,
			info: savefile.LinkInfo{EtherType: savefile.EtherTypeIPv4, Direction: savefile.DirectionInbound, PktType: 3, HAType: 1, VLANTags: 1, VLAN: 7},
		},
		{name: "sll netlink", lt: savefile.LinkTypeLinuxSLL, data: sll(4, 824, 0, make([]byte, 20))},
		{name: "sll short", lt: savefile.LinkTypeLinuxSLL, data: make([]byte, 15)},
		{
			name: "sll2 incoming", lt: savefile.LinkTypeLinuxSLL2, data: sll2(savefile.EtherTypeIPv4, 7, 1, 0, ipv4RST), ip: ipv4RST,
			info: savefile.LinkInfo{EtherType: savefile.EtherTypeIPv4, Direction: savefile.DirectionInbound, Ifindex: 7, HAType: 1},
		},
		{
			name: "sll2 outgoing", lt: savefile.LinkTypeLinuxSLL2, data: sll2(savefile.EtherTypeIPv6, 1, 772, 4, ipv6RST), ip: ipv6RST,
			info: savefile.LinkInfo{EtherType: savefile.EtherTypeIPv6, Direction: savefile.DirectionOutbound, Ifindex: 1, PktType: 4, HAType: 772},
		},
		{name: "sll2 arp", lt: savefile.LinkTypeLinuxSLL2, data: sll2(0x0806, 1, 1, 0, make([]byte, 28))},
		{name: "sll2 short", lt: savefile.LinkTypeLinuxSLL2, data: make([]byte, 19)},
		{name: "raw ipv4", lt: savefile.LinkTypeRaw, data: ipv4RST, ip: ipv4RST, info: v4},
		{name: "raw ipv6", lt: savefile.LinkTypeRaw, data: ipv6RST, ip: ipv6RST, info: v6},
		{name: "raw DLT 12", lt: savefile.LinkTypeRawBSD, data: ipv4RST, ip: ipv4RST, info: v4},
		{name: "raw DLT 14", lt: savefile.LinkTypeRawOpenBSD, data: ipv6RST, ip: ipv6RST, info: v6},
		{name: "raw version 5", lt: savefile.LinkTypeRaw, data: []byte{0x50, 0}},
		{name: "raw empty", lt: savefile.LinkTypeRaw, data: nil},
		{name: "ipv4", lt: savefile.LinkTypeIPv4, data: ipv4RST, ip: ipv4RST, info: v4},
		{name: "ipv4 with ipv6 packet", lt: savefile.LinkTypeIPv4, data: ipv6RST},
		{name: "ipv6", lt: savefile.LinkTypeIPv6, data: ipv6RST, ip: ipv6RST, info: v6},
		{name: "null little-endian ipv4", lt: savefile.LinkTypeNull, data: cat([]byte{2, 0, 0, 0}, ipv4RST), ip: ipv4RST, info: v4},
		{name: "null big-endian ipv4", lt: savefile.LinkTypeNull, data: cat([]byte{0, 0, 0, 2}, ipv4RST), ip: ipv4RST, info: v4},
		{name: "null netbsd ipv6", lt: savefile.LinkTypeNull, data: cat([]byte{24, 0, 0, 0}, ipv6RST), ip: ipv6RST, info: v6},
		{name: "null freebsd ipv6", lt: savefile.LinkTypeNull, data: cat([]byte{0, 0, 0, 28}, ipv6RST), ip: ipv6RST, info: v6},
		{name: "null darwin ipv6", lt: savefile.LinkTypeNull, data: cat([]byte{30, 0, 0, 0}, ipv6RST), ip: ipv6RST, info: v6},
		{name: "null linux AF_INET6 is not BSD", lt: savefile.LinkTypeNull, data: cat([]byte{10, 0, 0, 0}, ipv6RST)},
		{name: "null short", lt: savefile.LinkTypeNull, data: []byte{2, 0, 0}},
		{name: "loop ipv4", lt: savefile.LinkTypeLoop, data: cat([]byte{0, 0, 0, 2}, ipv4RST), ip: ipv4RST, info: v4},
		{name: "loop ipv6", lt: savefile.LinkTypeLoop, data: cat([]byte{0, 0, 0, 24}, ipv6RST), ip: ipv6RST, info: v6},
		{name: "loop is big-endian only", lt: savefile.LinkTypeLoop, data: cat([]byte{2, 0, 0, 0}, ipv4RST)},
		{name: "unknown link type", lt: 147, data: ipv4RST},
		{name: "fddi llc", lt: savefile.LinkTypeFDDI, data: fddi(0x50, cat(snap, ipv4RST)), ip: ipv4RST, info: v4},
		{name: "fddi smt frame", lt: savefile.LinkTypeFDDI, data: fddi(0x41, cat(snap, ipv4RST))},
		{name: "token ring with routing field", lt: savefile.LinkTypeIEEE8025, data: tokenRing(true, cat(snap, ipv4RST)), ip: ipv4RST, info: v4},
		{name: "token ring", lt: savefile.LinkTypeIEEE8025, data: tokenRing(false, cat(snap, ipv4RST)), ip: ipv4RST, info: v4},
		{name: "802.11 data", lt: savefile.LinkTypeIEEE80211, data: wlan(0x08, 0x01, cat(snap, ipv4RST)), ip: ipv4RST, info: v4},
		{name: "802.11 qos data wds", lt: savefile.LinkTypeIEEE80211, data: wlan(0x88, 0x03, cat(snap6, ipv6RST)), ip: ipv6RST, info: v6},
		{name: "802.11 protected", lt: savefile.LinkTypeIEEE80211, data: wlan(0x08, 0x41, cat(snap, ipv4RST))},
		{name: "802.11 null data", lt: savefile.LinkTypeIEEE80211, data: wlan(0x48, 0x01, nil)},
		{name: "802.11 beacon", lt: savefile.LinkTypeIEEE80211, data: wlan(0x80, 0, cat(snap, ipv4RST))},
		{name: "radiotap 802.11", lt: savefile.LinkTypeIEEE80211Radio, data: radiotapHdr(false, wlan(0x08, 0x02, cat(snap, ipv4RST))), ip: ipv4RST, info: v4},
		{name: "radiotap 802.11 qos padded", lt: savefile.LinkTypeIEEE80211Radio, data: radiotapHdr(true, cat(wlan(0x88, 0x02, nil), []byte{0, 0}, snap, ipv4RST)), ip: ipv4RST, info: v4},
		{name: "radiotap bad version", lt: savefile.LinkTypeIEEE80211Radio, data: cat([]byte{1}, radiotapHdr(false, wlan(0x08, 0x02, cat(snap, ipv4RST)))[1:])},
		{name: "ppp hdlc", lt: savefile.LinkTypePPP, data: cat([]byte{0xff, 0x03, 0x00, 0x21}, ipv4RST), ip: ipv4RST, info: v4},
		{name: "ppp compressed", lt: savefile.LinkTypePPPHDLC, data: cat([]byte{0x57}, ipv6RST), ip: ipv6RST, info: v6},
		{name: "ppp lcp", lt: savefile.LinkTypePPP, data: cat([]byte{0xc0, 0x21}, ipv4RST)},
		{name: "cisco hdlc", lt: savefile.LinkTypeCHDLC, data: cat([]byte{0x0f, 0x00, 0x86, 0xdd}, ipv6RST), ip: ipv6RST, info: v6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := bytes.Clone(tt.data)
			ip, info, ok := savefile.Network(tt.lt, data)
			if want := tt.ip != nil; ok != want {
				t.Fatalf("got Network() ok = %t, want = %t", ok, want)
			}
			if !ok {
				return
			}
			if !bytes.Equal(ip, tt.ip) {
				t.Errorf("got ip = %x, want = %x", ip, tt.ip)
			}
			if &ip[len(ip)-1] != &data[len(data)-1] {
				t.Error("ip does not alias the end of data")
			}
			if info != tt.info {
				t.Errorf("got info = %+v, want = %+v", info, tt.info)
			}
		})
	}
}

func TestNetworkAllocs(t *testing.T) {
	frames := []struct {
		lt   savefile.LinkType
		data []byte
	}{
		{savefile.LinkTypeEthernet, ether(savefile.EtherTypeIPv4, ipv4RST, 0x8100)},
		{savefile.LinkTypeLinuxSLL2, sll2(savefile.EtherTypeIPv6, 3, 1, 4, ipv6RST)},
		{savefile.LinkTypeNull, cat([]byte{2, 0, 0, 0}, ipv4RST)},
	}
	var sink int
	allocs := testing.AllocsPerRun(1000, func() {
		for _, f := range frames {
			ip, info, _ := savefile.Network(f.lt, f.data)
			sink += len(ip) + info.Ifindex
		}
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per run, want = 0", allocs)
	}
	_ = sink
}

func TestLinkTypeString(t *testing.T) {
	tests := []struct {
		lt   savefile.LinkType
		want string
	}{
		{savefile.LinkTypeNull, "NULL"},
		{savefile.LinkTypeEthernet, "EN10MB"},
		{savefile.LinkTypeRaw, "RAW"},
		{savefile.LinkTypeRawBSD, "RAW"},
		{savefile.LinkTypeLoop, "LOOP"},
		{savefile.LinkTypeLinuxSLL, "LINUX_SLL"},
		{savefile.LinkTypeLinuxSLL2, "LINUX_SLL2"},
		{savefile.LinkTypeIPv4, "IPV4"},
		{savefile.LinkTypeIPv6, "IPV6"},
		{147, "LinkType(147)"},
	}
	for _, tt := range tests {
		if got := tt.lt.String(); got != tt.want {
			t.Errorf("got LinkType(%d).String() = %q, want = %q", uint16(tt.lt), got, tt.want)
		}
	}
	if got := savefile.DirectionOutbound.String(); got != "outbound" {
		t.Errorf("got DirectionOutbound.String() = %q, want = %q", got, "outbound")
	}
}
