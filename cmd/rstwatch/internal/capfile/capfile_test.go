package capfile

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe/safetest"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
	"github.com/rstwatch/rstwatch/sniff/pipeline"
	"github.com/rstwatch/rstwatch/sniff/savefile"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// countWriter counts the Writes it is given: a file's write(2) calls.
type countWriter struct {
	bytes.Buffer
	writes int
}

func (w *countWriter) Write(b []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(b)
}

// event returns a captured segment from 192.0.2.1:7211 to 192.0.2.2:port.
func event(port uint16, flags sniff.TCPFlags, v explain.Verdict) *pipeline.Event {
	src, dst := netip.MustParseAddrPort("192.0.2.1:7211"), netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), port)
	data := snifftest.IPv4Segment(src, dst, flags, 0, 5)
	e := &pipeline.Event{Verdict: v}
	if err := e.Segment.Decode(data); err != nil {
		panic(err)
	}
	e.Time, e.Ifindex, e.Ifname, e.Len, e.Data, e.Direction = time.Unix(1700000000, 0), 2, "eth0", len(data), data, sniff.In
	return e
}

var (
	sampled   = explain.Verdict{Cause: explain.Refused, Sampled: true}
	explained = explain.Verdict{
		Cause:  explain.Abort,
		Sender: explain.Sender{Process: explain.Proc{Known: true, Owned: true, PID: 4242, Comm: "nginx"}},
		Target: explain.Target{Process: explain.Proc{Known: true, Owned: true, PID: 7, Comm: "curl"}},
	}
)

// TestWriterFilePath is the -w path in a storm: handling a reset or a SYN
// allocates nothing and makes no Write of its own; the file gets a few
// Writes of many packets, and the comments carry each verdict that
// attribution looked at and each failure that is not a reset; a reset
// explained from the packet alone (sampled) has none.
func TestWriterFilePath(t *testing.T) {
	out := &countWriter{}
	w, err := Create(pipeline.Stdio, false, out, "")
	if err != nil {
		t.Fatal(err)
	}
	unanswered := explain.Verdict{Kind: explain.KindUnanswered, Cause: explain.Timeout, Sampled: true, Attempts: 2}
	events := []*pipeline.Event{
		event(40000, sniff.FlagRST|sniff.FlagACK, sampled),
		event(40001, sniff.FlagRST, explained),
		event(40002, sniff.FlagSYN, explain.Verdict{}),
		event(40003, sniff.FlagSYN, unanswered),
	}
	for _, e := range events { // the first: the interface's block
		if err := w.Handle(e); err != nil {
			t.Fatal(err)
		}
	}
	const runs = 5000
	allocs := testing.AllocsPerRun(runs, func() {
		for _, e := range events {
			if err := w.Handle(e); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("Handle allocates %v times per 4 segments, want 0", allocs)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	packets := len(events) * (runs + 2) // AllocsPerRun runs once more to warm up
	if most := out.Len()/savefile.WriteAt + 1; out.writes > most {
		t.Errorf("%d packets took %d Writes, want at most %d", packets, out.writes, most)
	}

	r, err := savefile.NewReader(&out.Buffer)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"",
		"rstwatch: cause=abort sender=nginx/4242 target=curl/7",
		synComment,
		"rstwatch: kind=unanswered cause=timeout",
	}
	for i := 0; ; i++ {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			if i != packets {
				t.Errorf("read %d packets back, want %d", i, packets)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Comment != want[i%len(want)] {
			t.Fatalf("packet %d: comment %q, want %q", i, p.Comment, want[i%len(want)])
		}
	}
}

// BenchmarkWriterHandle is the cost of one reset on the -w path after
// the pipeline: the pcapng block and its comment.
func BenchmarkWriterHandle(b *testing.B) {
	w, err := Create(pipeline.Stdio, false, io.Discard, "")
	if err != nil {
		b.Fatal(err)
	}
	e := event(40000, sniff.FlagRST|sniff.FlagACK, sampled)
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Handle(e); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHostileComment: the process names a pcapng comment carries are
// escaped like every other output (tshark and Wireshark print comments).
func TestHostileComment(t *testing.T) {
	for _, name := range safetest.Hostile {
		v := explain.Verdict{Cause: explain.Abort}
		v.Sender.Process = explain.Proc{Owned: true, PID: 42, Comm: name}
		v.Target.Process = explain.Proc{Owned: true, PID: 43, Comm: name}
		c := appendVerdict(nil, &v)
		safetest.AssertLine(t, c)
		if !strings.HasPrefix(string(c), "rstwatch: cause=abort sender=") || !strings.Contains(string(c), "/42 target=") {
			t.Errorf("comment %q lacks the cause and the pids", c)
		}
	}
}
