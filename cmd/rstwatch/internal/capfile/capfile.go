// Package capfile writes the capture file of -w: every reset, and the SYNs
// kept for attribution, as pcapng (with the explanation as a packet
// comment) or classic pcap. A Writer is a pipeline.Sink.
//
// It belongs to the command (which file, which format, how comments read),
// so it lives under cmd/rstwatch/internal; the block encoding itself is
// package savefile's.
package capfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
	"github.com/rstwatch/rstwatch/sniff/pipeline"
	"github.com/rstwatch/rstwatch/sniff/savefile"
)

// ErrSameFile reports a -w path that is the file -r reads.
var ErrSameFile = errors.New("is also the file being read: writing would destroy it")

// ErrSymlink reports a -w path that is an existing symbolic link.
var ErrSymlink = errors.New("is a symbolic link: rstwatch does not write through links (give the target's path)")

// Writer writes captured segments to a pcapng or pcap file.
type Writer struct {
	name string
	f    *os.File // nil when writing to stdout
	w    savefile.Writer
	// closed is set by Close.
	closed bool
	// comment is the packet comment being built; reused, so that writing
	// a packet allocates nothing.
	comment []byte
}

// Create creates path (or uses stdout for "-"), mode 0644, and prepares
// the header: pcapng by default, classic pcap with LINKTYPE_LINUX_SLL2
// when asPcap is set. An existing symbolic link at path is refused
// (ErrSymlink) rather than followed: rstwatch runs as root and creates the
// file before dropping privileges, so a link planted in a shared directory
// must not redirect the write. read is the -r path, if any: writing over
// it is refused (ErrSameFile).
func Create(path string, asPcap bool, stdout io.Writer, read string) (*Writer, error) {
	cf := &Writer{name: path}
	dst := stdout
	if path != pipeline.Stdio {
		if read != "" && read != pipeline.Stdio && sameFile(path, read) {
			return nil, fmt.Errorf("-w %s %w", path, ErrSameFile)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
				return nil, fmt.Errorf("-w %s %w", path, ErrSymlink)
			}
			return nil, fmt.Errorf("cannot write capture file: %w", err)
		}
		cf.f, dst = f, f
	}
	if asPcap {
		cf.w = savefile.NewPcapWriter(dst)
	} else {
		cf.w = savefile.NewPcapNGWriter(dst)
	}
	return cf, nil
}

// sameFile reports whether a and b name one existing file.
func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// Handle writes e: a reset with its explanation as the comment, a SYN
// marked as kept for attribution. It allocates nothing.
func (cf *Writer) Handle(e *pipeline.Event) error {
	ci := savefile.CaptureInfo{Time: e.Time, Ifindex: e.Ifindex, Ifname: e.Ifname, OrigLen: e.Len}
	if e.Reported() {
		if commented(&e.Verdict) {
			cf.comment = appendVerdict(cf.comment[:0], &e.Verdict)
			ci.CommentBytes = cf.comment
		}
	} else {
		ci.Comment = synComment
	}
	switch e.Direction {
	case sniff.In:
		ci.Direction = savefile.DirectionInbound
	case sniff.Out:
		ci.Direction = savefile.DirectionOutbound
	case sniff.Local:
		// The capture keeps loopback's outgoing copy (see package filter).
		ci.Direction, ci.HAType = savefile.DirectionOutbound, sniff.HATypeLoopback
	}
	if err := cf.w.WritePacket(ci, e.Data); err != nil {
		return fmt.Errorf("write %s: %w", cf.name, err)
	}
	return nil
}

// FlushOnTimer makes Writer a pipeline.TimedSink: the file is written
// when the buffer is full and at least every pipeline.FlushEvery, not each
// time the capture goes idle.
func (cf *Writer) FlushOnTimer() {}

// Flush writes out whole blocks buffered so far.
func (cf *Writer) Flush() error {
	if err := cf.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", cf.name, err)
	}
	return nil
}

// Close flushes and closes the file. Only the first call does anything, so
// an early return's deferred Close and the explicit one can both stand.
func (cf *Writer) Close() error {
	if cf.closed {
		return nil
	}
	cf.closed = true
	err := cf.Flush()
	if cf.f != nil {
		if cerr := cf.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write %s: %w", cf.name, cerr)
		}
	}
	return err
}

// commented reports whether a reported event's packet gets a comment: a
// failure that is not a reset (its kind is not in the packet), and a reset
// that attribution looked at. A reset past the attribution budget
// (Sampled) was explained from the packet alone, which the file holds:
// rstwatch -r finds the same cause again. In a storm, leaving those out
// spares a third of the bytes written.
func commented(v *explain.Verdict) bool {
	return v.Kind > explain.KindReset || !v.Sampled
}

// synComment marks the SYNs a capture file holds only for attribution.
const synComment = "rstwatch: SYN kept for attribution"

// appendVerdict appends the pcapng packet comment that carries the
// explanation: the cause, and the processes when attribution found them.
func appendVerdict(b []byte, v *explain.Verdict) []byte {
	b = append(b, "rstwatch: "...)
	if v.Kind > explain.KindReset {
		// An unanswered handshake or an ICMP error, not a reset.
		b = append(b, "kind="...)
		b = append(b, v.Kind.String()...)
		b = append(b, ' ')
	}
	b = append(b, "cause="...)
	b = append(b, v.Cause.String()...)
	for _, p := range []struct {
		key string
		p   *explain.Proc
	}{{" sender=", &v.Sender.Process}, {" target=", &v.Target.Process}} {
		if p.p.Owned {
			b = append(b, p.key...)
			b = safe.AppendText(b, p.p.Comm) // tshark and Wireshark print comments
			b = append(b, '/')
			b = strconv.AppendInt(b, int64(p.p.PID), 10)
			if p.p.Seen == explain.ViaListener {
				b = append(b, "(inferred-from-listener)"...)
			}
		}
	}
	return b
}
