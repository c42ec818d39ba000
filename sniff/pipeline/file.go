package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/savefile"
)

// Stdio is the file name that means standard input (or, for -w, output).
const Stdio = "-"

// File is a capture file read instead of a live capture. Its errors name
// the file, so that a damaged file ends with one line that says which file
// and where.
type File struct {
	*sniff.FileReader
	// Name is the path, or "standard input".
	Name   string
	closer io.Closer
}

// OpenFile opens a pcap or pcapng file ("-" is stdin) and reads its header.
// Opening a FIFO blocks until a writer opens it; ending ctx (SIGINT,
// SIGTERM) ends that wait with ctx's error.
func OpenFile(ctx context.Context, path string, opts filter.Options, stdin io.Reader) (*File, error) {
	f := &File{Name: path, closer: io.NopCloser(nil)}
	r := stdin
	if path == Stdio {
		f.Name = "standard input"
	} else {
		osf, err := openCtx(ctx, path)
		if err != nil {
			return nil, err
		}
		r, f.closer = osf, osf
	}
	fr, err := sniff.NewFileReader(r, opts)
	if err != nil {
		f.closer.Close()
		if errors.Is(err, savefile.ErrUnknownFormat) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		return nil, fmt.Errorf("read %s: %w", f.Name, err)
	}
	f.FileReader = fr
	return f, nil
}

// openCtx opens path for reading. open(2) of a FIFO with no writer blocks,
// and the runtime restarts it after a signal, so it runs on a goroutine of
// its own that is abandoned when ctx ends (the process is about to exit).
func openCtx(ctx context.Context, path string) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := os.Open(path)
		done <- result{f, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			return nil, fmt.Errorf("cannot read capture file: %w", res.err)
		}
		return res.f, nil
	case <-ctx.Done():
		go func() {
			// Close the file should the open still complete.
			if res := <-done; res.f != nil {
				res.f.Close()
			}
		}()
		return nil, fmt.Errorf("open %s: %w (no writer had opened it)", path, ctx.Err())
	}
}

// Next implements source.
func (f *File) Next(e *sniff.Event) error {
	err := f.FileReader.Next(e)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read %s: %w", f.Name, err)
	}
	return err
}

// Close closes the file.
func (f *File) Close() error { return f.closer.Close() }
