package main

import (
	"testing"

	"github.com/rstwatch/rstwatch/sniff"
)

// TestCrafter checks the storm's packets: valid checksums, IPv4 and IPv6
// alternating, the wanted flags, and no two alike.
func TestCrafter(t *testing.T) {
	for _, flags := range []uint8{tcpRST | tcpACK, tcpSYN} {
		c := &crafter{src4: txAddr4, dst4: rxAddr4, src6: txAddr6, dst6: rxAddr6, flags: flags}
		seen := map[[3]uint32]bool{}
		b := make([]byte, slot)
		for i := range uint64(1000) {
			n, v6 := c.packet(b, i)
			if v6 != (i%2 == 1) {
				t.Fatalf("packet %d: v6 %v", i, v6)
			}
			p := b[:n]
			var s sniff.Segment
			if err := s.Decode(p); err != nil {
				t.Fatalf("packet %d does not decode: %v", i, err)
			}
			if uint8(s.Flags) != flags {
				t.Fatalf("packet %d: flags %v, want %#x", i, s.Flags, flags)
			}
			ipl := ipv4Len
			if v6 {
				ipl = ipv6Len
			} else if fold(sum(0, p[:ipv4Len])) != 0xffff {
				t.Fatalf("packet %d: bad IPv4 header checksum", i)
			}
			if fold(pseudo(p[:ipl], v6, n-ipl)+sum(0, p[ipl:])) != 0xffff {
				t.Fatalf("packet %d: bad TCP checksum", i)
			}
			k := [3]uint32{uint32(s.Src.Port()), uint32(s.Dst.Port()), s.Seq}
			if seen[k] {
				t.Fatalf("packet %d repeats ports and seq %v", i, k)
			}
			seen[k] = true
		}
	}
}

func TestParseCounts(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want counts
	}{
		{"listening on all interfaces (lo), capturing TCP resets\n12 resets captured, 3 dropped by kernel\n15 packets received by filter\n", counts{12, 3, 15}},
		{"tcpdump: listening on any, link-type LINUX_SLL2\n7 packets captured\n9 packets received by filter\n2 packets dropped by kernel\n", counts{7, 2, 9}},
		{"rstwatch: boom\n", counts{-1, -1, -1}},
	} {
		if got := parseCounts(tt.in); got != tt.want {
			t.Errorf("parseCounts(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}
