package savefile_test

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/sniff/savefile"
)

// testCapture is one packet for the writers.
type testCapture struct {
	ci savefile.CaptureInfo
	ip []byte
}

// testCaptures is a mix of interfaces, directions, comments and sizes.
func testCaptures() []testCapture {
	big := bytes.Repeat([]byte{0x45}, 70000) // larger than the writers' buffer
	base := time.Date(2024, 2, 29, 12, 0, 0, 123456789, time.UTC)
	return []testCapture{
		{savefile.CaptureInfo{Time: base, Ifindex: 2, Ifname: "eth0", Direction: savefile.DirectionInbound}, ipv4RST},
		{savefile.CaptureInfo{Time: base.Add(1), Ifindex: 1, Ifname: "lo", Direction: savefile.DirectionOutbound, HAType: savefile.ARPHRDLoopback, Comment: "rst from port 80"}, ipv6RST},
		{savefile.CaptureInfo{Time: base.Add(time.Second), Ifindex: 2, Ifname: "eth0", Direction: savefile.DirectionOutbound, OrigLen: 1500}, ipv4RST[:30]},
		{savefile.CaptureInfo{Time: base.Add(2 * time.Second), Ifindex: 9, Comment: "no name, odd length comment"}, ipv6RST},
		{savefile.CaptureInfo{Time: base.Add(3 * time.Second), Ifindex: 2, Ifname: "eth0", Direction: savefile.DirectionInbound, HAType: savefile.ARPHRDEther}, big},
		{savefile.CaptureInfo{Time: base.Add(4 * time.Second), Ifindex: 1, Ifname: "lo", Comment: "ünïcode"}, ipv4RST},
	}
}

// writeAll writes caps with w and flushes it.
func writeAll(t *testing.T, w savefile.Writer, caps []testCapture) {
	t.Helper()
	for _, c := range caps {
		if err := w.WritePacket(c.ci, c.ip); err != nil {
			t.Fatalf("failed to write packet: %v", err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("failed to flush: %v", err)
	}
}

func TestPcapNGWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := savefile.NewPcapNGWriter(&buf)
	caps := testCaptures()
	writeAll(t, w, caps)

	res := readAll(buf.Bytes())
	checkReadErr(t, res.err)
	ifaceOrder := map[string]int{"eth0": 0, "lo": 1, "": 2}
	var want []savefile.Packet
	for _, c := range caps {
		want = append(want, savefile.Packet{
			Time:      c.ci.Time,
			Interface: ifaceOrder[c.ci.Ifname],
			LinkType:  savefile.LinkTypeRaw,
			Data:      c.ip,
			OrigLen:   max(c.ci.OrigLen, len(c.ip)),
			Direction: c.ci.Direction,
			Comment:   c.ci.Comment,
		})
	}
	if d := diffPackets(want, res.packets); d != "" {
		t.Errorf("unexpected packets (-want +got):\n%s", d)
	}
	for i, c := range caps {
		if res.names[i] != c.ci.Ifname {
			t.Errorf("packet %d: got interface name %q, want = %q", i, res.names[i], c.ci.Ifname)
		}
	}
}

func TestPcapWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := savefile.NewPcapWriter(&buf)
	caps := testCaptures()
	writeAll(t, w, caps)

	res := readAll(buf.Bytes())
	checkReadErr(t, res.err)
	if len(res.packets) != len(caps) {
		t.Fatalf("got %d packets, want = %d", len(res.packets), len(caps))
	}
	for i, c := range caps {
		p := res.packets[i]
		if p.LinkType != savefile.LinkTypeLinuxSLL2 {
			t.Fatalf("packet %d: got link type %v, want = LINUX_SLL2", i, p.LinkType)
		}
		if !p.Time.Equal(c.ci.Time) {
			t.Errorf("packet %d: got Time = %s, want = %s", i, p.Time, c.ci.Time)
		}
		if want := 20 + max(c.ci.OrigLen, len(c.ip)); p.OrigLen != want {
			t.Errorf("packet %d: got OrigLen = %d, want = %d", i, p.OrigLen, want)
		}
		ip, info, ok := savefile.Network(p.LinkType, p.Data)
		if !ok {
			t.Fatalf("packet %d: Network found no IP packet in %x", i, p.Data)
		}
		if !bytes.Equal(ip, c.ip) {
			t.Errorf("packet %d: got ip = %x, want = %x", i, ip, c.ip)
		}
		// PACKET_HOST stands for an unknown direction too.
		wantDir := c.ci.Direction
		if wantDir == savefile.DirectionUnknown {
			wantDir = savefile.DirectionInbound
		}
		wantHA := c.ci.HAType
		if wantHA == 0 {
			wantHA = savefile.ARPHRDNone
		}
		if info.Ifindex != c.ci.Ifindex || info.Direction != wantDir || info.HAType != wantHA {
			t.Errorf("packet %d: got ifindex %d, %v, hatype %d, want = %d, %v, %d",
				i, info.Ifindex, info.Direction, info.HAType, c.ci.Ifindex, wantDir, wantHA)
		}
	}
}

func TestWriterNoAllocs(t *testing.T) {
	writers := map[string]func(io.Writer) savefile.Writer{
		"pcapng": func(w io.Writer) savefile.Writer { return savefile.NewPcapNGWriter(w) },
		"pcap":   func(w io.Writer) savefile.Writer { return savefile.NewPcapWriter(w) },
	}
	for name, newWriter := range writers {
		t.Run(name, func(t *testing.T) {
			w := newWriter(io.Discard)
			caps := testCaptures()
			// Warm up: see every interface once, grow the block buffer.
			for _, c := range caps {
				if err := w.WritePacket(c.ci, c.ip); err != nil {
					t.Fatalf("failed to write packet: %v", err)
				}
			}
			allocs := testing.AllocsPerRun(200, func() {
				for _, c := range caps {
					if err := w.WritePacket(c.ci, c.ip); err != nil {
						t.Fatalf("failed to write packet: %v", err)
					}
				}
			})
			if allocs != 0 {
				t.Errorf("got %v allocations per run, want = 0", allocs)
			}
		})
	}
}

// writeRecorder records the size of every Write.
type writeRecorder struct {
	bytes.Buffer
	ends []int // file offset after each Write
}

func (w *writeRecorder) Write(b []byte) (int, error) {
	n, err := w.Buffer.Write(b)
	w.ends = append(w.ends, w.Len())
	return n, err
}

// TestWriterWholeBlocks checks that every Write to the file ends on a block
// boundary, so a failed Write never leaves half a block behind.
func TestWriterWholeBlocks(t *testing.T) {
	var rec writeRecorder
	w := savefile.NewPcapNGWriter(&rec)
	// Enough packets for a dozen Writes.
	for i := 0; rec.Len() < 12*savefile.WriteAt; i++ {
		c := testCaptures()[i%6]
		if err := w.WritePacket(c.ci, c.ip[:len(c.ip)-i%7]); err != nil {
			t.Fatalf("failed to write packet: %v", err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("failed to flush: %v", err)
	}
	if len(rec.ends) < 10 {
		t.Fatalf("got %d Writes, want many", len(rec.ends))
	}
	// Walk the blocks of the file.
	b := rec.Bytes()
	boundaries := map[int]bool{}
	for off := 0; off < len(b); {
		off += int(le.Uint32(b[off+4:]))
		boundaries[off] = true
	}
	for _, end := range rec.ends {
		if !boundaries[end] {
			t.Fatalf("a Write ended at offset %d, inside a block", end)
		}
	}
}

// TestWriterBatches: a storm of small packets reaches the file in few
// Writes of at least WriteAt bytes, not one a packet, and a comment given
// as CommentBytes is written as the same Comment.
func TestWriterBatches(t *testing.T) {
	var rec, same writeRecorder
	w, ref := savefile.NewPcapNGWriter(&rec), savefile.NewPcapNGWriter(&same)
	comment := []byte("rstwatch: cause=refused")
	const n = 20000
	for i := range n {
		ci := savefile.CaptureInfo{Time: time.Unix(1700000000, int64(i)), Ifindex: 2, Ifname: "eth0", Direction: savefile.DirectionInbound}
		withString := ci
		ci.CommentBytes, withString.Comment = comment, string(comment)
		if err := w.WritePacket(ci, ipv4RST); err != nil {
			t.Fatalf("failed to write packet: %v", err)
		}
		if err := ref.WritePacket(withString, ipv4RST); err != nil {
			t.Fatalf("failed to write packet: %v", err)
		}
	}
	for _, wr := range []savefile.Writer{w, ref} {
		if err := wr.Flush(); err != nil {
			t.Fatalf("failed to flush: %v", err)
		}
	}
	if !bytes.Equal(rec.Bytes(), same.Bytes()) {
		t.Errorf("CommentBytes and Comment give different files")
	}
	if want := rec.Len()/savefile.WriteAt + 1; len(rec.ends) > want {
		t.Errorf("%d packets (%d bytes) took %d Writes, want at most %d", n, rec.Len(), len(rec.ends), want)
	}
	prev := 0
	for i, end := range rec.ends[:len(rec.ends)-1] {
		if end-prev < savefile.WriteAt {
			t.Errorf("Write %d was %d bytes, want at least %d", i, end-prev, savefile.WriteAt)
		}
		prev = end
	}
}

// failWriter accepts n bytes, then fails like a full disk.
type failWriter struct{ n int }

func (w *failWriter) Write(b []byte) (int, error) {
	if len(b) > w.n {
		n := w.n
		w.n = 0
		return n, syscall.ENOSPC
	}
	w.n -= len(b)
	return len(b), nil
}

func TestWriterErrors(t *testing.T) {
	for _, name := range []string{"pcapng", "pcap"} {
		t.Run(name, func(t *testing.T) {
			fw := &failWriter{n: 100 << 10}
			var w savefile.Writer = savefile.NewPcapWriter(fw)
			if name == "pcapng" {
				w = savefile.NewPcapNGWriter(fw)
			}
			ci := savefile.CaptureInfo{Time: time.Now(), Ifindex: 1, Ifname: "eth0"}
			var err error
			// More than WriteAt bytes: the buffer is written out.
			for i := 0; i < 2*savefile.WriteAt/len(ipv4RST) && err == nil; i++ {
				err = w.WritePacket(ci, ipv4RST)
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("got WritePacket error %v, want ENOSPC", err)
			}
			if err := w.Flush(); !errors.Is(err, syscall.ENOSPC) || !strings.HasPrefix(err.Error(), "savefile: ") {
				t.Errorf("got Flush error %v, want savefile: ... ENOSPC", err)
			}
			if err := w.WritePacket(ci, ipv4RST); !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("got WritePacket error %v after failure, want ENOSPC", err)
			}
		})
	}

	// Bad arguments are refused without breaking the writer.
	var buf bytes.Buffer
	w := savefile.NewPcapNGWriter(&buf)
	if err := w.WritePacket(savefile.CaptureInfo{Comment: strings.Repeat("x", 70000)}, ipv4RST); err == nil {
		t.Error("WritePacket accepted a 70000-byte comment")
	}
	if err := w.WritePacket(savefile.CaptureInfo{}, make([]byte, savefile.MaxPacketSize+1)); err == nil {
		t.Error("WritePacket accepted an oversized packet")
	}
	if err := w.WritePacket(savefile.CaptureInfo{Time: time.Unix(5, 0)}, ipv4RST); err != nil {
		t.Fatalf("failed to write packet: %v", err)
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("failed to flush: %v", err)
	}
	res := readAll(buf.Bytes())
	checkReadErr(t, res.err)
	if len(res.packets) != 1 || !res.packets[0].Time.Equal(time.Unix(5, 0)) {
		t.Errorf("got %d packets (%v), want one at 5s", len(res.packets), res.packets)
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata/savefile")

// TestWriterGolden compares the writers' output with files that Wireshark
// has read (see TestTShark), so that format changes are deliberate. Run
// with -update to rewrite them.
func TestWriterGolden(t *testing.T) {
	for _, format := range []string{"pcapng", "pcap"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			var w savefile.Writer = savefile.NewPcapWriter(&buf)
			if format == "pcapng" {
				w = savefile.NewPcapNGWriter(&buf)
			}
			for _, c := range testCaptures() {
				if len(c.ip) > 100 {
					continue // keep the golden files small
				}
				if err := w.WritePacket(c.ci, c.ip); err != nil {
					t.Fatalf("failed to write packet: %v", err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatalf("failed to flush: %v", err)
			}
			path := filepath.Join("..", "..", "testdata", "savefile", "writer."+format)
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatalf("failed to update golden file: %v", err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("failed to read golden file: %v", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("output differs from %s (run with -update if intended):\ngot  %x\nwant %x", path, buf.Bytes(), want)
			}
		})
	}
}
