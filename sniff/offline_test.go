package sniff_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/savefile"
)

// TestFileReaderDirection checks how a capture file's records map onto
// Direction, for files written by rstwatch -w and by other tools.
func TestFileReaderDirection(t *testing.T) {
	remote := refusedV4
	remote.src = netip.MustParseAddrPort("198.18.0.1:7211")
	remote.dst = netip.MustParseAddrPort("198.18.0.2:46000")
	for _, tt := range []struct {
		name   string
		pcap   bool // else pcapng
		ci     savefile.CaptureInfo
		packet tcpSpec
		want   sniff.Direction
	}{
		// What rstwatch -w writes for a loopback reset.
		{"pcapng_lo", false, savefile.CaptureInfo{Ifindex: 1, Ifname: "lo", Direction: savefile.DirectionOutbound}, refusedV4, sniff.Local},
		{"pcap_sll2_loopback", true, savefile.CaptureInfo{Ifindex: 1, Direction: savefile.DirectionOutbound, HAType: sniff.HATypeLoopback}, refusedV6, sniff.Local},
		{"pcapng_out", false, savefile.CaptureInfo{Ifindex: 2, Ifname: "va", Direction: savefile.DirectionOutbound}, remote, sniff.Out},
		{"pcapng_in", false, savefile.CaptureInfo{Ifindex: 2, Ifname: "vb", Direction: savefile.DirectionInbound}, remote, sniff.In},
		{"pcap_sll2_out", true, savefile.CaptureInfo{Ifindex: 2, Direction: savefile.DirectionOutbound}, remote, sniff.Out},
		{"pcap_sll2_in", true, savefile.CaptureInfo{Ifindex: 2, Direction: savefile.DirectionInbound}, remote, sniff.In},
		// A file that records no direction: loopback addresses at both
		// ends still mean both ends are on the capturing host.
		{"unrecorded_loopback_v4", false, savefile.CaptureInfo{}, refusedV4, sniff.Local},
		{"unrecorded_loopback_v6", false, savefile.CaptureInfo{}, refusedV6, sniff.Local},
		{"unrecorded_remote", false, savefile.CaptureInfo{}, remote, sniff.Unknown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			var w savefile.Writer = savefile.NewPcapNGWriter(&buf)
			if tt.pcap {
				w = savefile.NewPcapWriter(&buf)
			}
			ci := tt.ci
			ci.Time = time.Unix(1700000000, 123456789)
			if err := w.WritePacket(ci, tt.packet.build()); err != nil {
				t.Fatalf("failed to write packet: %v", err)
			}
			if err := w.Flush(); err != nil {
				t.Fatalf("failed to flush: %v", err)
			}
			fr, err := sniff.NewFileReader(&buf, filter.Options{})
			if err != nil {
				t.Fatalf("failed to open capture: %v", err)
			}
			var e sniff.Event
			if err := fr.Next(&e); err != nil {
				t.Fatalf("failed to read reset: %v", err)
			}
			if e.Direction != tt.want {
				t.Errorf("got direction %v, want = %v", e.Direction, tt.want)
			}
			if !e.Time.Equal(ci.Time) {
				t.Errorf("got time %v, want = %v", e.Time, ci.Time)
			}
			// SLL2 records the ifindex; pcapng only the interface's
			// position in the file, counted from 1.
			want := 1
			if tt.pcap && ci.Ifindex != 0 {
				want = ci.Ifindex
			}
			if e.Ifindex != want {
				t.Errorf("got ifindex %d, want = %d", e.Ifindex, want)
			}
			if e.Ifname != ci.Ifname {
				t.Errorf("got ifname %q, want = %q", e.Ifname, ci.Ifname)
			}
		})
	}
}

// TestFileReaderHandshake checks that a SYN-ACK in the file, which the RST
// filter itself never passes, is remembered for the reset that follows.
func TestFileReaderHandshake(t *testing.T) {
	server := netip.MustParseAddrPort("198.18.0.1:8080")
	client := netip.MustParseAddrPort("198.18.0.2:46000")
	other := netip.MustParseAddrPort("198.18.0.3:46001")
	var buf bytes.Buffer
	w := savefile.NewPcapNGWriter(&buf)
	for i, spec := range []tcpSpec{
		{src: client, dst: server, flags: sniff.FlagSYN, seq: 100},
		{src: server, dst: client, flags: sniff.FlagSYN | sniff.FlagACK, seq: 500, ack: 101},
		{src: server, dst: client, flags: sniff.FlagRST | sniff.FlagACK, seq: 501, ack: 101},
		{src: other, dst: server, flags: sniff.FlagSYN, seq: 7},
		{src: server, dst: other, flags: sniff.FlagRST | sniff.FlagACK, seq: 0, ack: 8},
	} {
		if err := w.WritePacket(savefile.CaptureInfo{Time: time.Unix(1700000000+int64(i), 0)}, spec.build()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	fr, err := sniff.NewFileReader(&buf, filter.Options{})
	if err != nil {
		t.Fatalf("failed to open capture: %v", err)
	}
	for _, want := range []struct {
		dst  netip.AddrPort
		seen bool
	}{{client, true}, {other, false}} {
		var e sniff.Event
		if err := fr.Next(&e); err != nil {
			t.Fatalf("failed to read reset: %v", err)
		}
		if e.Dst != want.dst || fr.HandshakeSeen(&e) != want.seen {
			t.Errorf("reset to %v: handshake seen %v, want reset to %v with %v", e.Dst, fr.HandshakeSeen(&e), want.dst, want.seen)
		}
	}
}
