package savefile_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/sniff/savefile"
)

// bulkPacket is a large non-RST IPv4 TCP segment (ACK with 1400 bytes).
var bulkPacket = func() []byte {
	b := make([]byte, 1440)
	copy(b, ipv4RST)
	b[2], b[3] = 1440>>8, 1440&0xff
	b[33] = 0x10 // ACK
	return b
}()

// writeCapture writes packets to w until it holds at least size bytes; one
// packet in 1000 is a RST.
func writeCapture(tb testing.TB, w io.Writer, pcapng bool, size int64) (packets int) {
	return writeCaptureN(tb, w, pcapng, 0, size)
}

// writeCaptureN writes count packets or size bytes to w, whichever limit
// is set and reached first.
func writeCaptureN(tb testing.TB, w io.Writer, pcapng bool, count int, size ...int64) (packets int) {
	tb.Helper()
	cw := &countWriter{w: w}
	var sw savefile.Writer = savefile.NewPcapWriter(cw)
	if pcapng {
		sw = savefile.NewPcapNGWriter(cw)
	}
	ci := savefile.CaptureInfo{Time: time.Unix(1700000000, 0), Ifindex: 2, Ifname: "eth0", Direction: savefile.DirectionInbound}
	for ; (count == 0 || packets < count) && (len(size) == 0 || cw.n < size[0]); packets++ {
		ip := bulkPacket
		if packets%1000 == 999 {
			ip = ipv4RST
		}
		ci.Time = ci.Time.Add(time.Microsecond)
		if err := sw.WritePacket(ci, ip); err != nil {
			tb.Fatalf("failed to write packet: %v", err)
		}
		if packets%256 == 0 {
			if err := sw.Flush(); err != nil {
				tb.Fatalf("failed to flush: %v", err)
			}
		}
	}
	if err := sw.Flush(); err != nil {
		tb.Fatalf("failed to flush: %v", err)
	}
	return packets
}

type countWriter struct {
	w io.Writer
	n int64
}

func (w *countWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.n += int64(n)
	return n, err
}

// readCount reads r to the end and returns the number of packets and RSTs.
func readCount(tb testing.TB, r io.Reader) (packets, rsts int) {
	tb.Helper()
	sr, err := savefile.NewReader(r)
	if err != nil {
		tb.Fatalf("failed to open capture: %v", err)
	}
	for {
		p, err := sr.Next()
		if errors.Is(err, io.EOF) {
			return packets, rsts
		}
		if err != nil {
			tb.Fatalf("failed to read packet %d: %v", packets, err)
		}
		packets++
		if ip, _, ok := savefile.Network(p.LinkType, p.Data); ok {
			if rst, _ := tcpRST(ip); rst {
				rsts++
			}
		}
	}
}

func BenchmarkReader(b *testing.B) {
	for _, format := range []string{"pcapng", "pcap"} {
		b.Run(format, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "bench."+format)
			f, err := os.Create(path)
			if err != nil {
				b.Fatalf("failed to create file: %v", err)
			}
			bw := bufio.NewWriter(f)
			want := writeCapture(b, bw, format == "pcapng", 64<<20)
			if err := bw.Flush(); err != nil {
				b.Fatalf("failed to write file: %v", err)
			}
			fi, err := f.Stat()
			if err != nil {
				b.Fatalf("failed to stat file: %v", err)
			}
			f.Close()

			b.SetBytes(fi.Size())
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				f, err := os.Open(path)
				if err != nil {
					b.Fatalf("failed to open file: %v", err)
				}
				if n, _ := readCount(b, f); n != want {
					b.Fatalf("read %d packets, want = %d", n, want)
				}
				f.Close()
			}
		})
	}
}

func BenchmarkWriter(b *testing.B) {
	for _, format := range []string{"pcapng", "pcap"} {
		b.Run(format, func(b *testing.B) {
			var w savefile.Writer = savefile.NewPcapWriter(io.Discard)
			if format == "pcapng" {
				w = savefile.NewPcapNGWriter(io.Discard)
			}
			ci := savefile.CaptureInfo{Time: time.Now(), Ifindex: 2, Ifname: "eth0", Direction: savefile.DirectionOutbound}
			b.SetBytes(int64(len(bulkPacket)))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.WritePacket(ci, bulkPacket); err != nil {
					b.Fatalf("failed to write packet: %v", err)
				}
			}
		})
	}
}

// repeatReader returns head, then body count times, without holding more
// than one copy of either: a large capture file that costs no memory.
type repeatReader struct {
	head, body []byte
	count      int
	off        int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.head) > 0 {
			m := copy(p[n:], r.head)
			r.head = r.head[m:]
			n += m
			continue
		}
		if r.count == 0 {
			if n == 0 {
				return 0, io.EOF
			}
			break
		}
		m := copy(p[n:], r.body[r.off:])
		n += m
		r.off += m
		if r.off == len(r.body) {
			r.off = 0
			r.count--
		}
	}
	return n, nil
}

// TestReaderConstantMemory reads a 256 MB capture (with a RST in every 1000
// packets) and checks that the heap does not grow with it.
func TestReaderConstantMemory(t *testing.T) {
	for _, format := range []string{"pcapng", "pcap"} {
		t.Run(format, func(t *testing.T) {
			// A file header, then the same 1000 packets over and over.
			var one, two bytes.Buffer
			writeCaptureN(t, &one, format == "pcapng", 1000)
			writeCaptureN(t, &two, format == "pcapng", 2000)
			bodyLen := two.Len() - one.Len()
			split := one.Len() - bodyLen
			rr := &repeatReader{head: one.Bytes()[:split], body: one.Bytes()[split:], count: 256 << 20 / bodyLen}
			copies := rr.count
			total := int64(split) + int64(bodyLen)*int64(rr.count)

			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			packets, rsts := readCount(t, rr)
			runtime.ReadMemStats(&after)

			if packets != 1000*copies || rsts != copies {
				t.Errorf("got %d packets and %d RSTs, want = %d and %d", packets, rsts, 1000*copies, copies)
			}
			allocated := after.TotalAlloc - before.TotalAlloc
			grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("read %d MB, %d packets: allocated %d KiB in total, heap grew by %d KiB, heap sys %d KiB -> %d KiB",
				total>>20, packets, allocated>>10, grown>>10, before.HeapSys>>10, after.HeapSys>>10)
			if allocated > 2<<20 {
				t.Errorf("reading %d MB allocated %d bytes, want constant memory (< 2 MiB)", total>>20, allocated)
			}
			if after.HeapSys > before.HeapSys+8<<20 {
				t.Errorf("heap grew from %d to %d bytes", before.HeapSys, after.HeapSys)
			}
		})
	}
}
