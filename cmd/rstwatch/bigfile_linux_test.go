package main

import (
	"bufio"
	"bytes"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/sniff/savefile"
)

// bigEnv selects the 1 GiB version of TestReadLargeFile (acceptance test
// 4, quoted in README); the default is 200 MiB, to keep the test run short.
const bigEnv = "RSTWATCH_BIG"

// maxRSS is the peak resident memory allowed for reading a file of any
// size: the Go runtime, the binary, and a reader that holds one packet.
const maxRSS = 32 << 20

// writeBulkCapture writes a capture of at least size bytes: 1400-byte TCP
// data segments, IPv4 and IPv6, with a reset every 10000 segments. It
// returns the number of resets.
func writeBulkCapture(t *testing.T, path string, pcapng bool, size int64) int {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("failed to create capture: %v", err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	var w savefile.Writer
	if pcapng {
		w = savefile.NewPcapNGWriter(bw)
	} else {
		w = savefile.NewPcapWriter(bw)
	}
	var (
		c4, s4 = netip.MustParseAddrPort("198.18.0.2:46000"), netip.MustParseAddrPort("198.18.0.1:443")
		c6, s6 = netip.MustParseAddrPort("[2001:db8::2]:46000"), netip.MustParseAddrPort("[2001:db8::1]:443")
		data4  = tcpPacket(s4, c4, tcpACK, 1, 1, 1400)
		data6  = tcpPacket(s6, c6, tcpACK, 1, 1, 1400)
		ci     = savefile.CaptureInfo{Time: time.Unix(1700000000, 0), Ifindex: 2, Ifname: "eth0", Direction: savefile.DirectionInbound}
		resets int
		n      int64
	)
	for i := 0; n < size; i++ {
		ci.Time = ci.Time.Add(10 * time.Microsecond)
		ip := data4
		if i%2 == 1 {
			ip = data6
		}
		if i%10000 == 9999 {
			src, dst := s4, c4
			if resets%2 == 1 {
				src, dst = s6, c6
			}
			ip = tcpPacket(src, dst, tcpRST|tcpACK, uint32(i), 1, 0)
			resets++
		}
		if err := w.WritePacket(ci, ip); err != nil {
			t.Fatalf("failed to write packet: %v", err)
		}
		n += int64(len(ip)) + 32 // about the record or block overhead
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("failed to flush: %v", err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatalf("failed to write capture: %v", err)
	}
	return resets
}

// countingWriter counts lines written to it and discards them.
type countingWriter struct{ lines int }

func (c *countingWriter) Write(b []byte) (int, error) {
	c.lines += bytes.Count(b, []byte{'\n'})
	return len(b), nil
}

// readWithRusage runs watch -r path --json and returns the resets printed,
// the wall time and the peak RSS of the process in bytes.
func readWithRusage(t *testing.T, path string) (int, time.Duration, int64) {
	t.Helper()
	var out countingWriter
	var stderr bytes.Buffer
	cmd := exec.Command(binary, "watch", "-r", path, "--json")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("failed to read %s: %v: %s", path, err, stderr.String())
	}
	elapsed := time.Since(start)
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatalf("no rusage for the child: %T", cmd.ProcessState.SysUsage())
	}
	return out.lines, elapsed, int64(ru.Maxrss) << 10 // Linux reports KiB (int32 on 32-bit)
}

// TestReadLargeFile proves that watch -r streams: the peak RSS of reading a
// large capture is small and the same as for a small one. It logs the
// throughput; RSTWATCH_BIG=1 reads 1 GiB instead of 200 MiB.
func TestReadLargeFile(t *testing.T) {
	size := int64(200 << 20)
	if os.Getenv(bigEnv) != "" {
		size = 1 << 30
	}
	for _, format := range []string{"pcapng", "pcap"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			small := filepath.Join(dir, "small."+format)
			smallResets := writeBulkCapture(t, small, format == "pcapng", 1<<20)
			big := filepath.Join(dir, "big."+format)
			bigResets := writeBulkCapture(t, big, format == "pcapng", size)
			fi, err := os.Stat(big)
			if err != nil {
				t.Fatalf("failed to stat capture: %v", err)
			}

			n, _, smallRSS := readWithRusage(t, small)
			if n != smallResets {
				t.Errorf("small file: printed %d resets, want %d", n, smallResets)
			}
			// Read once to warm the page cache, then measure.
			if _, err := io.Copy(io.Discard, mustOpen(t, big)); err != nil {
				t.Fatalf("failed to read capture: %v", err)
			}
			n, elapsed, bigRSS := readWithRusage(t, big)
			if n != bigResets {
				t.Errorf("big file: printed %d resets, want %d", n, bigResets)
			}
			mb := float64(fi.Size()) / 1e6
			t.Logf("%s: read %.0f MB (%d resets) in %v: %.0f MB/s; peak RSS %.1f MiB (%.1f MiB for a 1 MiB file)",
				format, mb, n, elapsed.Round(time.Millisecond), mb/elapsed.Seconds(), float64(bigRSS)/(1<<20), float64(smallRSS)/(1<<20))
			if bigRSS > maxRSS {
				t.Errorf("peak RSS %d bytes reading %.0f MB, want < %d", bigRSS, mb, maxRSS)
			}
			if bigRSS > smallRSS+4<<20 {
				t.Errorf("peak RSS grows with the file: %d bytes for %.0f MB, %d for 1 MiB", bigRSS, mb, smallRSS)
			}
		})
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("failed to open %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
