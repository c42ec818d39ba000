package sniff

import (
	"fmt"
	"io"
	"net/netip"

	"golang.org/x/net/bpf"

	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/sniff/savefile"
)

// FileReader yields the segments of a pcap or pcapng file that the capture
// filter accepts, decoded and deduplicated exactly as a live capture is.
// The filter runs in x/net/bpf's VM on the innermost IP packet found inside
// each frame (see Encap.Peel), so --port and --host mean the same thing on
// and off line.
type FileReader struct {
	r     *savefile.Reader
	vm    *bpf.VM
	dedup Dedup
	// accepted remembers the connections whose SYN-ACK is in the file,
	// keyed by the sender of the SYN-ACK (the server) and its peer:
	// offline, the handshake is what tells a refusal from a reset of a
	// connection that existed. It is cleared when it reaches
	// maxHandshakes, so memory stays bounded on any file.
	accepted map[[2]netip.AddrPort]struct{}
	scratch  Segment

	// Packets counts the frames read, Accepted those the filter passed,
	// Undecodable those it passed that did not decode.
	Packets, Accepted, Undecodable uint64
}

// NewFileReader reads the file header from r (format detected by magic
// number) and prepares the filter for opts.
func NewFileReader(r io.Reader, opts filter.Options) (*FileReader, error) {
	prog, err := filter.Core(opts)
	if err != nil {
		return nil, err
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		return nil, fmt.Errorf("load filter into VM: %w", err)
	}
	sr, err := savefile.NewReader(r)
	if err != nil {
		return nil, err
	}
	return &FileReader{r: sr, vm: vm}, nil
}

// Next fills e with the next accepted segment. It returns io.EOF at the
// clean end of the file, the reader's error (wrapping savefile.ErrCorrupt
// or io.ErrUnexpectedEOF) for a damaged one, and an error wrapping
// savefile.ErrUnsupportedLinkType at the first frame of a link type
// savefile.Link does not strip.
func (f *FileReader) Next(e *Event) error {
	for {
		p, err := f.r.Next()
		if err != nil {
			return err
		}
		f.Packets++
		payload, proto, info, ok := savefile.Link(p.LinkType, p.Data)
		if !ok {
			if !p.LinkType.Supported() {
				return fmt.Errorf("link type %v %w", p.LinkType, savefile.ErrUnsupportedLinkType)
			}
			continue
		}
		// The filter and the decoder see the innermost IP packet, so
		// --port and --host apply to the connection inside any tunnel.
		ip, err := e.Encap.Peel(payload, proto)
		if err != nil {
			continue
		}
		f.noteHandshake(ip)
		if n, err := f.vm.Run(ip); err != nil || n == 0 {
			continue
		}
		f.Accepted++
		if err := e.Segment.Decode(ip); err != nil {
			f.Undecodable++
			continue
		}
		e.Time = p.Time
		e.Data = ip
		// The wire length of the IP packet: the frame's original length
		// less its link-layer header.
		e.Len = p.OrigLen - (len(p.Data) - len(ip))
		e.Ifindex = info.Ifindex
		if e.Ifindex == 0 {
			e.Ifindex = p.Interface + 1
		}
		e.Ifname = ""
		if ifi, ok := f.r.Interface(p.Interface); ok {
			e.Ifname = ifi.Name
		}
		e.Direction = fileDirection(p.Direction, info, e)
		if f.dedup.Duplicate(e) {
			continue
		}
		return nil
	}
}

// fileDirection maps what a file records about direction onto Direction.
// Loopback traffic is Local, as on a live capture; a file shows it by the
// LINUX_SLL/SLL2 hardware type, by the interface name (pcapng if_name "lo",
// as rstwatch -w writes it) or, when the file records no direction at all,
// by loopback addresses at both ends (RFC 1122 section 3.2.1.3: they never
// leave the host).
func fileDirection(d savefile.Direction, info savefile.LinkInfo, e *Event) Direction {
	if info.HAType == HATypeLoopback || e.Ifname == loopbackName {
		return Local
	}
	if d == savefile.DirectionUnknown {
		d = info.Direction
	}
	switch d {
	case savefile.DirectionInbound:
		return In
	case savefile.DirectionOutbound:
		return Out
	}
	if e.Src.Addr().IsLoopback() && e.Dst.Addr().IsLoopback() {
		return Local
	}
	return Unknown
}

// loopbackName is the name of Linux's loopback interface.
const loopbackName = "lo"

// Buffered always returns 1: a file reader never blocks, so a caller that
// flushes its output whenever nothing is buffered (see Sniffer.Buffered)
// keeps it buffered until the end instead of flushing per segment.
func (f *FileReader) Buffered() int { return 1 }

// maxHandshakes bounds the connections FileReader remembers.
const maxHandshakes = 1 << 16

// noteHandshake records a SYN-ACK, whatever the filter says about it.
func (f *FileReader) noteHandshake(ip []byte) {
	if f.scratch.Decode(ip) != nil || f.scratch.Flags&(FlagSYN|FlagACK|FlagRST) != FlagSYN|FlagACK {
		return
	}
	if f.accepted == nil || len(f.accepted) >= maxHandshakes {
		f.accepted = make(map[[2]netip.AddrPort]struct{})
	}
	f.accepted[[2]netip.AddrPort{f.scratch.Src, f.scratch.Dst}] = struct{}{}
}

// HandshakeSeen reports whether the file holds a SYN-ACK from e's sender to
// e's receiver: the connection the reset ends had been accepted.
func (f *FileReader) HandshakeSeen(e *Event) bool {
	_, ok := f.accepted[[2]netip.AddrPort{e.Src, e.Dst}]
	return ok
}
