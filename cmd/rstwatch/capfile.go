package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/savefile"
)

// stdio is the file name that means standard input or output.
const stdio = "-"

// captureFile writes captured segments to a pcapng or pcap file (-w).
type captureFile struct {
	name string
	f    *os.File // nil when writing to stdout
	w    savefile.Writer
	// closed is set by close.
	closed bool
}

// createCaptureFile creates path (or uses stdout for "-") and writes the
// file header: pcapng by default, classic pcap with LINKTYPE_LINUX_SLL2
// when asPcap is set.
func createCaptureFile(path string, asPcap bool, stdout io.Writer) (*captureFile, error) {
	cf := &captureFile{name: path}
	dst := stdout
	if path != stdio {
		f, err := os.Create(path)
		if err != nil {
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

// write appends e, with comment as the pcapng packet comment.
func (cf *captureFile) write(e *sniff.Event, comment string) error {
	ci := savefile.CaptureInfo{Time: e.Time, Ifindex: e.Ifindex, Ifname: e.Ifname, OrigLen: e.Len, Comment: comment}
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

// flush writes out whole blocks buffered so far.
func (cf *captureFile) flush() error {
	if err := cf.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", cf.name, err)
	}
	return nil
}

// close flushes and closes the file. Only the first call does anything, so
// an early return's deferred close and the explicit one can both stand.
func (cf *captureFile) close() error {
	if cf.closed {
		return nil
	}
	cf.closed = true
	err := cf.flush()
	if cf.f != nil {
		if cerr := cf.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write %s: %w", cf.name, cerr)
		}
	}
	return err
}

// fileSource is a capture file read with -r. Its errors name the file, so
// that a damaged file ends with one line that says which file and where.
type fileSource struct {
	*sniff.FileReader
	name string
}

// Next implements eventSource.
func (fs *fileSource) Next(e *sniff.Event) error {
	err := fs.FileReader.Next(e)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read %s: %w", fs.name, err)
	}
	return err
}

// openReadFile opens a capture file for -r ("-" is stdin).
func openReadFile(path string, opts filter.Options, stdin io.Reader) (*fileSource, io.Closer, error) {
	var (
		r      io.Reader = stdin
		closer io.Closer = io.NopCloser(nil)
	)
	if path != stdio {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read capture file: %w", err)
		}
		r, closer = f, f
	}
	name := path
	if path == stdio {
		name = "standard input"
	}
	fr, err := sniff.NewFileReader(r, opts)
	if err != nil {
		closer.Close()
		if errors.Is(err, savefile.ErrUnknownFormat) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		return nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	return &fileSource{FileReader: fr, name: name}, closer, nil
}
