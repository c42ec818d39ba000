package main

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/capfile"
	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/render"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/pipeline"
	"github.com/rstwatch/rstwatch/sniff/savefile"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// stormCapture is a pcap of n resets as rststorm sends them: IPv4 and
// IPv6 in turn, each with its own port and sequence number, 1.7 µs apart.
func stormCapture(tb testing.TB, n int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := savefile.NewPcapWriter(&buf)
	src4, dst4 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	src6, dst6 := netip.MustParseAddr("fd52::1"), netip.MustParseAddr("fd52::2")
	t0 := time.Unix(1700000000, 0)
	for i := range n {
		port := uint16(1024 + i%60000)
		ip := snifftest.IPv4Segment(netip.AddrPortFrom(src4, port), netip.AddrPortFrom(dst4, 7211), sniff.FlagRST|sniff.FlagACK, uint32(i)*2654435761, 5)
		if i%2 == 1 {
			ip = snifftest.IPv6Segment(netip.AddrPortFrom(src6, port), netip.AddrPortFrom(dst6, 7211), sniff.FlagRST|sniff.FlagACK, uint32(i)*2654435761, 5)
		}
		ci := savefile.CaptureInfo{Time: t0.Add(time.Duration(i) * 1700 * time.Nanosecond), Ifindex: 2, Direction: savefile.DirectionInbound}
		if err := w.WritePacket(ci, ip); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkReplay runs the capture pipeline over a storm read from memory
// into each output path, as `watch -r`: the decode, dedup, verdict and
// sink of every reset, without the kernel's part. ns/reset is the cost of
// one reset; profile with -cpuprofile.
func BenchmarkReplay(b *testing.B) {
	const n = 100000
	capture := stormCapture(b, n)
	for _, tc := range replaySinks(b) {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			resets := 0
			for b.Loop() {
				p, err := pipeline.Open(context.Background(), &pipeline.Config{Read: pipeline.Stdio, Stdin: bytes.NewReader(capture)})
				if err != nil {
					b.Fatal(err)
				}
				got, err := p.Run(context.Background(), 0, tc.sink())
				p.Close()
				if err != nil || got != n {
					b.Fatalf("got %d resets, %v; want %d", got, err, n)
				}
				resets += got
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(resets), "ns/reset")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// replaySink makes a fresh sink of one output path.
type replaySink struct {
	name string
	sink func() pipeline.Sink
}

// replaySinks are the output paths a replay measures: -w, --json, text.
func replaySinks(tb testing.TB) []replaySink {
	return []replaySink{
		{"w", func() pipeline.Sink {
			w, err := capfile.Create(pipeline.Stdio, false, io.Discard, "")
			if err != nil {
				tb.Fatal(err)
			}
			return w
		}},
		{"json", func() pipeline.Sink { return render.NewLineSink(io.Discard, true) }},
		{"text", func() pipeline.Sink { return render.NewLineSink(io.Discard, false) }},
	}
}

// TestReplayAllocs: the pipeline allocates nothing per reset on the file
// and the line paths. A run over ten times more resets allocates no more
// than the set-up does (opening, the sinks' buffers).
func TestReplayAllocs(t *testing.T) {
	small, big := stormCapture(t, 2000), stormCapture(t, 20000)
	for _, tc := range replaySinks(t)[:2] { // the file and JSON paths
		allocs := func(capture []byte) float64 {
			return testing.AllocsPerRun(3, func() {
				p, err := pipeline.Open(context.Background(), &pipeline.Config{Read: pipeline.Stdio, Stdin: bytes.NewReader(capture)})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				if _, err := p.Run(context.Background(), 0, tc.sink()); err != nil {
					t.Fatal(err)
				}
			})
		}
		if a, b := allocs(small), allocs(big); b > a+20 {
			t.Errorf("%s: %v allocations for 2,000 resets, %v for 20,000: the path allocates per reset", tc.name, a, b)
		}
	}
}
