package render

import (
	"fmt"
	"io"

	"github.com/rstwatch/rstwatch/sniff/pipeline"
)

// lineWriteAt is how many bytes of lines make LineSink write them out
// before the pipeline's next Flush (which comes once per ring block). In a
// storm a ring block renders to about 2 MB of JSON: each write(2) also
// wakes the Go runtime's monitor thread, so fewer, larger writes.
const lineWriteAt = 1 << 20

// LineSink prints each reset as a text line or a JSON object. Lines are
// rendered straight into one buffer, written once per ring block (on
// Flush) or per lineWriteAt bytes: no copy, no write(2) per line.
type LineSink struct {
	out  io.Writer
	json bool
	buf  []byte
	r    Renderer
}

// NewLineSink returns a sink writing lines (or JSON objects, with asJSON)
// to out.
func NewLineSink(out io.Writer, asJSON bool) *LineSink {
	return &LineSink{out: out, json: asJSON, buf: make([]byte, 0, lineWriteAt+4096)}
}

// Handle renders a reset, an unanswered handshake or an ICMP error; other
// events (SYNs kept for attribution) are not printed.
func (l *LineSink) Handle(e *pipeline.Event) error {
	if !e.Reported() {
		return nil
	}
	var ns *Namespace
	if e.Netns != nil {
		ns = &Namespace{Inode: e.Netns.Inode, Name: e.Netns.Name}
	}
	if l.json {
		l.buf = l.r.AppendJSON(l.buf, &e.Event, &e.Verdict, ns)
	} else {
		l.buf = l.r.AppendText(l.buf, &e.Event, &e.Verdict, ns)
	}
	l.buf = append(l.buf, '\n')
	if len(l.buf) >= lineWriteAt {
		return l.Flush()
	}
	return nil
}

// Flush writes the lines rendered so far.
func (l *LineSink) Flush() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.out.Write(l.buf)
	l.buf = l.buf[:0]
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
