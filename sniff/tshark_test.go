package sniff_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/savefile"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// tsharkDecodeAs tells tshark what rstwatch knows without being told: Linux
// sends VXLAN to UDP port 8472 by default, which Wireshark does not map to
// VXLAN by itself; and the hand-built Ethernet pseudowire on MPLS label 300
// has a control word, which Wireshark's heuristic misses (routers are
// configured for it; rstwatch looks for an EtherType behind both readings).
var tsharkDecodeAs = []string{"-d", "udp.port==8472,vxlan", "-d", "mpls.label==300,pwethcw"}

// tsharkResets lists the resets of a capture file as
// tshark -Y tcp.flags.reset==1 sees them: the frame number, the innermost
// addresses (the
// Source and Destination columns, which the innermost IP layer sets), TCP
// ports, raw sequence and acknowledgement numbers.
func tsharkResets(t *testing.T, tshark, path string) []string {
	t.Helper()
	args := append([]string{"-r", path, "-Y", "tcp.flags.reset==1", "-T", "fields", "-E", "separator=|",
		"-e", "frame.number", "-e", "_ws.col.Source", "-e", "_ws.col.Destination", "-e", "tcp.srcport", "-e", "tcp.dstport",
		"-e", "tcp.seq_raw", "-e", "tcp.ack_raw"}, tsharkDecodeAs...)
	out := snifftest.Wireshark(t, tshark, args...)
	var rows []string
	for line := range strings.SplitSeq(strings.TrimSuffix(out, "\n"), "\n") {
		if line != "" {
			rows = append(rows, line)
		}
	}
	return rows
}

// fileResets lists the resets that FileReader finds, in tshark's format.
func fileResets(t *testing.T, path string) ([]string, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fr, err := sniff.NewFileReader(f, filter.Options{})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var rows, encaps []string
	for {
		var e sniff.Event
		err := fr.Next(&e)
		if errors.Is(err, io.EOF) {
			return rows, encaps
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rows = append(rows, fmt.Sprintf("%d|%s|%s|%d|%d|%d|%d", fr.Packets, e.Src.Addr(), e.Dst.Addr(), e.Src.Port(), e.Dst.Port(), e.Seq, e.Ack))
		encaps = append(encaps, string(e.Encap.AppendText(nil)))
	}
}

// checkTShark fails unless FileReader finds exactly the resets that tshark
// finds in path, with the same inner addresses, ports, sequence and
// acknowledgement numbers. It returns the encapsulations FileReader saw.
func checkTShark(t *testing.T, tshark, path string, wantResets int) []string {
	t.Helper()
	want := tsharkResets(t, tshark, path)
	got, encaps := fileResets(t, path)
	if !slices.Equal(got, want) {
		t.Errorf("%s: resets differ\nrstwatch:\n  %s\ntshark:\n  %s", filepath.Base(path), strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if len(want) != wantResets {
		t.Errorf("%s: tshark found %d resets, want %d", filepath.Base(path), len(want), wantResets)
	}
	return encaps
}

// TestTSharkEncap writes every hand-built encapsulation into capture files
// of the link types that carry them and checks FileReader against tshark.
func TestTSharkEncap(t *testing.T) {
	tshark := snifftest.LookTShark(t)
	dir := t.TempDir()
	var ether, raw [][]byte
	for _, tc := range encapCases() {
		switch tc.proto {
		case sniff.ProtoEthernet:
			ether = append(ether, tc.pkt)
		case sniff.EtherTypeIPv4, sniff.EtherTypeIPv6:
			ether = append(ether, eth(tc.proto, tc.pkt))
			raw = append(raw, tc.pkt)
		case sniff.ProtoIP:
			raw = append(raw, tc.pkt)
		}
	}
	v4, v6 := innerV4.build(), innerV6.build()
	snap4 := join([]byte{0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0x00}, v4)
	snap6 := join([]byte{0xaa, 0xaa, 3, 0, 0, 0, 0x86, 0xdd}, v6)
	wlanHdr := func(fc0, fc1 byte) []byte {
		h := join([]byte{fc0, fc1, 0, 0}, macA, macB, macA, []byte{0x10, 0})
		if fc0&0x80 != 0 {
			h = append(h, 0, 0) // QoS control
		}
		return h
	}
	radiotap := []byte{0, 0, 8, 0, 0, 0, 0, 0} // no fields
	for _, f := range []struct {
		name   string
		lt     savefile.LinkType
		frames [][]byte
	}{
		{"ethernet", savefile.LinkTypeEthernet, ether},
		{"raw", savefile.LinkTypeRaw, raw},
		{"fddi", savefile.LinkTypeFDDI, [][]byte{join([]byte{0x50}, macA, macB, snap4), join([]byte{0x57}, macA, macB, snap6)}},
		{"token_ring", savefile.LinkTypeIEEE8025, [][]byte{join([]byte{0x10, 0x40}, macA, macB, snap4)}},
		{"ieee802_11", savefile.LinkTypeIEEE80211, [][]byte{join(wlanHdr(0x08, 0x01), snap4), join(wlanHdr(0x88, 0x02), snap6)}},
		{"radiotap", savefile.LinkTypeIEEE80211Radio, [][]byte{join(radiotap, wlanHdr(0x08, 0x02), snap4), join(radiotap, wlanHdr(0x88, 0x01), snap6)}},
		{"ppp", savefile.LinkTypePPP, [][]byte{join([]byte{0xff, 0x03, 0x00, 0x21}, v4), join([]byte{0x00, 0x57}, v6)}},
		{"null", savefile.LinkTypeNull, [][]byte{join([]byte{2, 0, 0, 0}, v4), join([]byte{30, 0, 0, 0}, v6)}},
		{"loop", savefile.LinkTypeLoop, [][]byte{join([]byte{0, 0, 0, 2}, v4)}},
		{"linux_sll_pppoe", savefile.LinkTypeLinuxSLL, [][]byte{
			join([]byte{0, 0, 0, 1, 0, 6}, macA, []byte{0, 0}, be16(0x8864), pppoe(9, 0x0021, v4))}},
	} {
		t.Run(f.name, func(t *testing.T) {
			path := filepath.Join(dir, f.name+".pcap")
			if err := os.WriteFile(path, pcapOf(f.lt, f.frames...), 0o644); err != nil {
				t.Fatal(err)
			}
			checkTShark(t, tshark, path, len(f.frames))
		})
	}
}

// TestTSharkTunnelCaptures checks the captures of real tunnels in
// testdata/tunnels (made by TestIntegrationTunnelCaptures: the Linux
// kernel's resets, captured by tcpdump on the underlay) against tshark.
func TestTSharkTunnelCaptures(t *testing.T) {
	tshark := snifftest.LookTShark(t)
	paths, err := filepath.Glob(filepath.Join("testdata", "tunnels", "*.pcap"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no captures in testdata/tunnels: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			encaps := checkTShark(t, tshark, path, 2)
			for _, e := range encaps {
				if !bytes.Contains([]byte(e), []byte("vxlan:")) {
					t.Errorf("reset without its VXLAN layer: %q", e)
				}
			}
		})
	}
}
