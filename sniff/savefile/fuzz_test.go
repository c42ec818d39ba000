package savefile_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/rstwatch/rstwatch/sniff/savefile"
)

// addCorpusSeeds adds the first bytes of a few files of the external corpus,
// if it is present, as seeds.
func addCorpusSeeds(f *testing.F, n int) {
	dir := os.Getenv("RSTWATCH_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	for _, name := range []string{
		"tcpdump/of13_ericsson.pcapng",
		"tcpdump/tcp_rst_diag_payload.pcap",
		"suricata-verify/issue-3341-tcphdr-01.pcap",
		"suricata-verify/bug-3844.pcap",
	} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		f.Add(b[:min(len(b), n)])
	}
}

// FuzzReader checks that no input makes the Reader panic, loop or return
// more than the input holds.
func FuzzReader(f *testing.F) {
	for _, b := range fixtures() {
		f.Add(b)
	}
	var w bytes.Buffer
	pw := savefile.NewPcapNGWriter(&w)
	for _, c := range testCaptures()[:4] {
		_ = pw.WritePacket(c.ci, c.ip)
	}
	_ = pw.Flush()
	f.Add(w.Bytes())
	// Many interfaces, one with a name longer than MaxInterfaceName.
	f.Add(manyInterfaces(64))
	addCorpusSeeds(f, 1024)

	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := savefile.NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Every packet takes at least 16 bytes of input (a pcap record
		// header, or an SPB), so more packets means a loop.
		for n := 0; ; n++ {
			if n > len(b)/16 {
				t.Fatalf("read %d packets from %d bytes", n, len(b))
			}
			p, err := r.Next()
			if err != nil {
				if _, err2 := r.Next(); err2 != err {
					t.Fatalf("error not sticky: got %v, then %v", err, err2)
				}
				return
			}
			if len(p.Data) > len(b) {
				t.Fatalf("packet of %d bytes from a %d-byte input", len(p.Data), len(b))
			}
			if _, ok := r.Interface(p.Interface); !ok {
				t.Fatalf("packet on interface %d, which Interface does not know", p.Interface)
			}
			savefile.Network(p.LinkType, p.Data)
		}
	})
}

// FuzzNetwork checks that Network never panics and that the IP packet it
// returns is a suffix of the frame, of the version it claims.
func FuzzNetwork(f *testing.F) {
	f.Add(uint16(savefile.LinkTypeEthernet), ether(savefile.EtherTypeIPv4, ipv4RST, 0x88a8, 0x8100))
	f.Add(uint16(savefile.LinkTypeEthernet), ether(48, cat([]byte{0xaa, 0xaa, 0x03, 0, 0, 0, 0x86, 0xdd}, ipv6RST)))
	f.Add(uint16(savefile.LinkTypeLinuxSLL), sll(4, 1, savefile.EtherTypeIPv4, ipv4RST))
	f.Add(uint16(savefile.LinkTypeLinuxSLL2), sll2(savefile.EtherTypeIPv6, 3, 772, 0, ipv6RST))
	f.Add(uint16(savefile.LinkTypeNull), cat([]byte{30, 0, 0, 0}, ipv6RST))
	f.Add(uint16(savefile.LinkTypeLoop), cat([]byte{0, 0, 0, 2}, ipv4RST))
	f.Add(uint16(savefile.LinkTypeRaw), ipv4RST)
	f.Add(uint16(savefile.LinkTypeIPv6), ipv6RST)
	snap := []byte{0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00}
	f.Add(uint16(savefile.LinkTypeFDDI), fddi(0x50, cat(snap, ipv4RST)))
	f.Add(uint16(savefile.LinkTypeIEEE8025), tokenRing(true, cat(snap, ipv4RST)))
	f.Add(uint16(savefile.LinkTypeIEEE80211), wlan(0x88, 0x03, cat(snap, ipv4RST)))
	f.Add(uint16(savefile.LinkTypeIEEE80211Radio), radiotapHdr(true, cat(wlan(0x88, 0x02, nil), []byte{0, 0}, snap, ipv4RST)))
	f.Add(uint16(savefile.LinkTypePPP), cat([]byte{0xff, 0x03, 0x00, 0x21}, ipv4RST))
	f.Add(uint16(savefile.LinkTypeCHDLC), cat([]byte{0x0f, 0x00, 0x86, 0xdd}, ipv6RST))

	f.Fuzz(func(t *testing.T, lt uint16, data []byte) {
		ip, info, ok := savefile.Network(savefile.LinkType(lt), data)
		if !ok {
			if ip != nil {
				t.Fatalf("got ip of %d bytes with ok false", len(ip))
			}
			return
		}
		if len(ip) == 0 || len(ip) > len(data) || &ip[len(ip)-1] != &data[len(data)-1] {
			t.Fatalf("ip (%d bytes) is not a suffix of data (%d bytes)", len(ip), len(data))
		}
		switch {
		case ip[0]>>4 == 4 && info.EtherType == savefile.EtherTypeIPv4:
		case ip[0]>>4 == 6 && info.EtherType == savefile.EtherTypeIPv6:
		default:
			t.Fatalf("got version %d with EtherType 0x%04x", ip[0]>>4, info.EtherType)
		}
	})
}
