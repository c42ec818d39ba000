package savefile_test

import (
	"bytes"
	"testing"

	"github.com/rstwatch/rstwatch/sniff/savefile"
)

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
		{name: "unknown link type", lt: 105, data: ipv4RST},
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
