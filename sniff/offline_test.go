package sniff_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
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

// pcapOf returns a classic pcap file (little-endian, microseconds) of link
// type lt holding frames, one second apart.
func pcapOf(lt savefile.LinkType, frames ...[]byte) []byte {
	le := binary.LittleEndian
	b := le.AppendUint32(nil, 0xa1b2c3d4)
	b = le.AppendUint16(b, 2)
	b = le.AppendUint16(b, 4)
	b = le.AppendUint64(b, 0)
	b = le.AppendUint32(b, 65535)
	b = le.AppendUint32(b, uint32(lt))
	for i, f := range frames {
		b = le.AppendUint32(b, uint32(1700000000+i))
		b = le.AppendUint32(b, 0)
		b = le.AppendUint32(b, uint32(len(f)))
		b = le.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// TestFileReaderEncap reads every hand-built encapsulation from a file: the
// event carries the inner connection and the layers, and --port applies to
// the inner ports.
func TestFileReaderEncap(t *testing.T) {
	for _, tc := range encapCases() {
		lt := savefile.LinkTypeEthernet
		switch tc.proto {
		case sniff.EtherTypeIPv4:
			lt = savefile.LinkTypeIPv4
		case sniff.EtherTypeIPv6:
			lt = savefile.LinkTypeIPv6
		case sniff.ProtoIP:
			lt = savefile.LinkTypeRaw
		case sniff.ProtoLLC:
			continue // no link type hands over a bare LLC frame
		}
		t.Run(tc.name, func(t *testing.T) {
			for _, port := range []uint16{tc.inner.src.Port(), 1} {
				fr, err := sniff.NewFileReader(bytes.NewReader(pcapOf(lt, tc.pkt)), filter.Options{Ports: []uint16{port}})
				if err != nil {
					t.Fatal(err)
				}
				var e sniff.Event
				err = fr.Next(&e)
				if port == 1 {
					if err != io.EOF {
						t.Errorf("--port 1 (no inner port) matched: %v", err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Next: %v", err)
				}
				if e.Src != tc.inner.src || e.Dst != tc.inner.dst || e.Seq != tc.inner.seq || e.Ack != tc.inner.ack {
					t.Errorf("got %v > %v seq %d ack %d, want the inner connection", e.Src, e.Dst, e.Seq, e.Ack)
				}
				if got := string(e.Encap.AppendJSON(nil)); got != tc.json {
					t.Errorf("encap %s, want %s", got, tc.json)
				}
				if e.Len != len(e.Data) {
					t.Errorf("Len %d, inner packet %d bytes", e.Len, len(e.Data))
				}
			}
		})
	}
}

// TestFileReaderUnsupportedLinkType checks the one-line error for a link
// type that has no IP to find.
func TestFileReaderUnsupportedLinkType(t *testing.T) {
	fr, err := sniff.NewFileReader(bytes.NewReader(pcapOf(147, refusedV4.build())), filter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var e sniff.Event
	err = fr.Next(&e)
	if !errors.Is(err, savefile.ErrUnsupportedLinkType) {
		t.Fatalf("got %v, want ErrUnsupportedLinkType", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "link type LinkType(147) not supported (supported: Ethernet") || strings.Contains(msg, "\n") {
		t.Errorf("error %q", msg)
	}
}
