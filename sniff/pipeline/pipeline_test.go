package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
	"github.com/rstwatch/rstwatch/sniff/savefile"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

var (
	server = netip.MustParseAddrPort("192.0.2.1:7211")
	client = netip.MustParseAddrPort("192.0.2.2:40000")
)

// pcapOf writes a pcap file of segments, one a millisecond.
func pcapOf(t testing.TB, segs ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := savefile.NewPcapWriter(&buf)
	for i, s := range segs {
		ci := savefile.CaptureInfo{Time: time.Unix(1700000000, 0).Add(time.Duration(i) * time.Millisecond), Ifindex: 1, OrigLen: len(s)}
		if err := w.WritePacket(ci, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func refusal(i int) []byte {
	c := netip.AddrPortFrom(client.Addr(), client.Port()+uint16(i))
	return snifftest.IPv4Segment(server, c, sniff.FlagRST|sniff.FlagACK, 0, 5)
}

// recorder is a sink that keeps what it was given.
type recorder struct {
	mu      sync.Mutex
	resets  []string
	syns    int
	flushes int
	handled chan struct{}
}

func (r *recorder) Handle(e *Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.IsReset() {
		r.resets = append(r.resets, e.Src.String()+">"+e.Dst.String()+" "+e.Verdict.Cause.String())
	} else {
		r.syns++
	}
	return nil
}

func (r *recorder) Flush() error {
	r.mu.Lock()
	r.flushes++
	r.mu.Unlock()
	if r.handled != nil {
		select {
		case r.handled <- struct{}{}:
		default:
		}
	}
	return nil
}

func openFile(t testing.TB, in io.Reader) *Pipeline {
	t.Helper()
	p, err := Open(context.Background(), &Config{Read: Stdio, Stdin: in})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestRunFile(t *testing.T) {
	syn := snifftest.IPv4Segment(client, server, sniff.FlagSYN, 99, 5)
	p := openFile(t, bytes.NewReader(pcapOf(t, syn, refusal(0), refusal(1))))
	var r recorder
	n, err := p.Run(context.Background(), 0, &r)
	if err != nil || n != 2 {
		t.Fatalf("Run = %d, %v; want 2 resets", n, err)
	}
	want := []string{"192.0.2.1:7211>192.0.2.2:40000 refused", "192.0.2.1:7211>192.0.2.2:40001 refused"}
	if len(r.resets) != 2 || r.resets[0] != want[0] || r.resets[1] != want[1] {
		t.Errorf("resets %q, want %q", r.resets, want)
	}
	if r.syns != 0 {
		t.Errorf("%d SYNs handed to the sink, want 0 (offline the filter passes resets only)", r.syns)
	}
	if r.flushes == 0 {
		t.Error("the sink was never flushed")
	}
}

func TestRunLimit(t *testing.T) {
	p := openFile(t, bytes.NewReader(pcapOf(t, refusal(0), refusal(1), refusal(2))))
	var r recorder
	if n, err := p.Run(context.Background(), 2, &r); err != nil || n != 2 || len(r.resets) != 2 {
		t.Fatalf("Run(limit 2) = %d, %v with %d resets handled; want 2", n, err, len(r.resets))
	}
}

// errSink fails every Handle.
type errSink struct{}

var errFull = errors.New("disk full")

func (errSink) Handle(*Event) error { return errFull }
func (errSink) Flush() error        { return nil }

func TestRunSinkError(t *testing.T) {
	p := openFile(t, bytes.NewReader(pcapOf(t, refusal(0), refusal(1))))
	if _, err := p.Run(context.Background(), 0, errSink{}); !errors.Is(err, errFull) {
		t.Fatalf("Run = %v, want the sink's error", err)
	}
}

// TestRunFlushesWhileSourceBlocks: a reset read from a pipe whose writer
// then goes quiet is flushed within FlushEvery, not when the next packet or
// the end of the file arrives.
func TestRunFlushesWhileSourceBlocks(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	file := pcapOf(t, refusal(0))
	go pw.Write(file) // the header, then one reset; then the writer waits
	p := openFile(t, pr)
	r := &recorder{handled: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := p.Run(ctx, 0, r)
		done <- err
	}()
	deadline := time.After(2 * time.Second)
	for {
		select {
		case <-r.handled:
			r.mu.Lock()
			got := len(r.resets)
			r.mu.Unlock()
			if got == 1 {
				pw.Close()
				if err := <-done; err != nil {
					t.Fatalf("Run = %v", err)
				}
				return
			}
		case <-deadline:
			t.Fatal("the reset was not flushed while the source blocked")
		}
	}
}

// TestOpenFileErrors: an empty or foreign file is one error naming it.
func TestOpenFileErrors(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("not a capture file at all")} {
		_, err := Open(context.Background(), &Config{Read: Stdio, Stdin: bytes.NewReader(in)})
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte("standard input")) {
			t.Errorf("Open(%q) = %v, want an error naming standard input", in, err)
		}
	}
}

// noop is a sink that does nothing.
type noop struct{}

func (noop) Handle(*Event) error { return nil }
func (noop) Flush() error        { return nil }

// TestRunAllocatesNothingPerReset: running 2,000 resets through the
// pipeline into a no-op sink allocates no more than running 10 does: the
// per-reset path (read, decode, dedup, explain from the packet, hand to
// the sinks) allocates nothing.
func TestRunAllocatesNothingPerReset(t *testing.T) {
	small, large := make([][]byte, 10), make([][]byte, 2000)
	for i := range large {
		large[i] = refusal(i)
		if i < len(small) {
			small[i] = large[i]
		}
	}
	allocs := func(file []byte) float64 {
		return testing.AllocsPerRun(5, func() {
			p, err := Open(context.Background(), &Config{Read: Stdio, Stdin: bytes.NewReader(file)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Run(context.Background(), 0, noop{}); err != nil {
				t.Fatal(err)
			}
			p.Close()
		})
	}
	a, b := allocs(pcapOf(t, small...)), allocs(pcapOf(t, large...))
	// The file reader's buffer may grow once; allow a few allocations,
	// far below one per reset.
	if b-a > 8 {
		t.Errorf("%v allocations for 2,000 resets, %v for 10: the per-reset path allocates", b, a)
	}
}

// TestVerdictFromFile: offline, a reset's cause comes from its shape and
// the handshake the file holds.
func TestVerdictFromFile(t *testing.T) {
	synack := snifftest.IPv4Segment(server, client, sniff.FlagSYN|sniff.FlagACK, 7, 5)
	abort := snifftest.IPv4Segment(server, client, sniff.FlagRST|sniff.FlagACK, 8, 5)
	p := openFile(t, bytes.NewReader(pcapOf(t, synack, abort)))
	var got explain.Verdict
	sink := sinkFunc(func(e *Event) error {
		if e.IsReset() {
			got = e.Verdict
		}
		return nil
	})
	if _, err := p.Run(context.Background(), 0, sink); err != nil {
		t.Fatal(err)
	}
	if !got.Offline || got.Cause == explain.Refused {
		t.Errorf("verdict %+v: want offline and not refused (the file holds the SYN-ACK)", got)
	}
}

type sinkFunc func(*Event) error

func (f sinkFunc) Handle(e *Event) error { return f(e) }
func (sinkFunc) Flush() error            { return nil }

// TestRunFileHandshakes: with Handshakes, both halves of a handshake in the
// file reach the sinks (diagnose's roles), and resets still do.
func TestRunFileHandshakes(t *testing.T) {
	syn := snifftest.IPv4Segment(client, server, sniff.FlagSYN, 99, 5)
	synack := snifftest.IPv4Segment(server, client, sniff.FlagSYN|sniff.FlagACK, 7, 5)
	ack := snifftest.IPv4Segment(client, server, sniff.FlagACK, 100, 5)
	abort := snifftest.IPv4Segment(client, server, sniff.FlagRST|sniff.FlagACK, 100, 5)
	p, err := Open(context.Background(), &Config{Read: Stdio, Stdin: bytes.NewReader(pcapOf(t, syn, synack, ack, abort)), Handshakes: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	var flags []sniff.TCPFlags
	sink := sinkFunc(func(e *Event) error { flags = append(flags, e.Flags); return nil })
	if _, err := p.Run(context.Background(), 0, sink); err != nil {
		t.Fatal(err)
	}
	want := []sniff.TCPFlags{sniff.FlagSYN, sniff.FlagSYN | sniff.FlagACK, sniff.FlagRST | sniff.FlagACK}
	if !slices.Equal(flags, want) {
		t.Errorf("sinks got flags %v, want %v (SYN, SYN-ACK, reset; not the bare ACK)", flags, want)
	}
}

// timedRecorder is a recorder that is a TimedSink.
type timedRecorder struct{ *recorder }

func (timedRecorder) FlushOnTimer() {}

// idleSource returns one reset, then has nothing buffered and blocks,
// as a live capture between ring blocks, until ctx ends.
type idleSource struct {
	ctx  context.Context
	sent bool
}

func (s *idleSource) Buffered() int {
	if s.sent {
		return 0
	}
	return 1
}

func (s *idleSource) Next(e *sniff.Event) error {
	if !s.sent {
		s.sent = true
		e.Time = time.Now()
		return e.Segment.Decode(refusal(0))
	}
	<-s.ctx.Done()
	return io.EOF
}

// TestRunTimedSinkWaitsForTimer: when the source goes idle, a plain sink
// is flushed at once and a TimedSink (a capture file) only by the timer,
// FlushEvery after the event, and still while the source blocks.
func TestRunTimedSinkWaitsForTimer(t *testing.T) {
	plain := &recorder{handled: make(chan struct{}, 1)}
	timed := timedRecorder{&recorder{handled: make(chan struct{}, 1)}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newRun(ctx, &Pipeline{}, 0, []Sink{plain, timed}, cancel)
	defer r.timer.Stop()
	done := make(chan error, 1)
	go func() { done <- r.loop(ctx, &idleSource{ctx: ctx}, nil) }()
	var plainAt time.Time
	select {
	case <-plain.handled:
		plainAt = time.Now()
	case <-timed.handled:
		t.Fatal("the timed sink was flushed before the plain one: at idle")
	case <-time.After(2 * time.Second):
		t.Fatal("the plain sink was not flushed when the source went idle")
	}
	select {
	case <-timed.handled:
		if d := time.Since(plainAt); d < FlushEvery/2 {
			t.Errorf("the timed sink was flushed %v after the idle flush, want about FlushEvery (%v)", d, FlushEvery)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the timed sink was not flushed by the timer while the source blocked")
	}
	timed.mu.Lock()
	n := len(timed.resets)
	timed.mu.Unlock()
	if n != 1 {
		t.Errorf("timed sink got %d resets, want 1", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("loop = %v", err)
	}
}
