package savefile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"
)

// MaxBlockSize is the largest pcap record or pcapng block the Reader
// accepts, and so the most memory it holds for one packet. A larger length
// field is reported as corruption.
const MaxBlockSize = 16 << 20

// MaxInterfaces is the most interfaces (Interface Description Blocks) one
// pcapng section may define, and MaxInterfaceName the most bytes of an
// if_name the Reader keeps (a longer name is cut). A capture defines one
// interface per captured link, a few hundred on a busy host; without a cap
// a file of millions of tiny IDBs grows the Reader without bound. With
// these caps the interface table stays under about 12 MiB; one interface
// more is an error, wrapping ErrLimit, that names the block's offset.
const (
	MaxInterfaces    = 65536
	MaxInterfaceName = 128
)

var (
	// ErrCorrupt is wrapped by errors about input that violates the file
	// format: impossible lengths, references to undefined interfaces, ...
	ErrCorrupt = errors.New("corrupt file")

	// ErrLimit is wrapped by errors about input the format allows but the
	// Reader refuses in order to bound its memory (MaxInterfaces).
	ErrLimit = errors.New("beyond the reader's limits")

	// ErrUnknownFormat is returned by NewReader when the input starts with
	// neither a pcap nor a pcapng magic number.
	ErrUnknownFormat = errors.New("not a pcap or pcapng file")
)

// Magic numbers, as read in the file's own byte order
// (draft-ietf-opsawg-pcap section 4, draft-ietf-opsawg-pcapng section 4.1).
const (
	pcapMagicMicro  = 0xa1b2c3d4
	pcapMagicNano   = 0xa1b23c4d
	pcapngByteOrder = 0x1a2b3c4d
)

// pcapng block types (draft-ietf-opsawg-pcapng section 11.1).
const (
	blockSectionHeader   = 0x0a0d0d0a
	blockInterface       = 0x00000001
	blockPacket          = 0x00000002 // obsolete
	blockSimplePacket    = 0x00000003
	blockEnhancedPacket  = 0x00000006
	blockHeaderLen       = 8  // type, total length
	blockTrailerLen      = 4  // total length again
	minBlockLen          = 12 // header and trailer
	shbFixedLen          = 16 // byte-order magic, versions, section length
	idbFixedLen          = 8  // link type, reserved, snaplen
	epbFixedLen          = 20 // interface ID, timestamp, lengths
	pbFixedLen           = 20 // interface ID, drops, timestamp, lengths
	spbFixedLen          = 4  // original length
	pcapFileHeaderLen    = 24
	pcapRecordHeaderLen  = 16
	pcapngVersionMajor   = 1
	pcapngMaxTSDecimal   = 19 // 10^19 is the largest power of ten in a uint64
	pcapngMaxTSBinary    = 63
	pcapngDefaultTSResol = 6 // microseconds
)

// pcapng option codes (draft-ietf-opsawg-pcapng sections 3.5, 4.2, 4.3).
const (
	optEndOfOpt  = 0
	optComment   = 1
	optShbUserAp = 4 // shb_userappl
	optIfName    = 2
	optIfTSResol = 9
	optIfTSOff   = 14
	optEpbFlags  = 2 // also pack_flags in the obsolete Packet Block
	epbFlagsDir  = 0x3
)

// Format is the kind of capture file a Reader reads.
type Format int

// Formats. The zero value is not valid.
const (
	_ Format = iota
	FormatPcap
	FormatPcapNG
)

// String returns "pcap" or "pcapng".
func (f Format) String() string {
	switch f {
	case FormatPcap:
		return "pcap"
	case FormatPcapNG:
		return "pcapng"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Interface describes a capture interface of a file. A pcap file has one.
type Interface struct {
	Name     string // pcapng if_name (at most MaxInterfaceName bytes), empty if absent and for pcap
	LinkType LinkType
	Snaplen  uint32 // 0 means no limit
}

// A Packet is one captured frame.
type Packet struct {
	// Time is when the packet was captured. It is the zero Time for a
	// pcapng Simple Packet Block, which has no timestamp.
	Time time.Time
	// Interface is the index of the capturing interface in the current
	// section of the file; see Reader.Interface. Always 0 for pcap.
	Interface int
	// LinkType is that interface's link type.
	LinkType LinkType
	// Data is the captured bytes, starting with the link-layer header. It
	// is only valid until the next call to Next.
	Data []byte
	// OrigLen is the length of the packet on the wire; it exceeds len(Data)
	// when the capture was truncated by a snaplen.
	OrigLen int
	// Direction comes from the pcapng epb_flags option, if present.
	Direction Direction
	// Comment is the first opt_comment of a pcapng packet block, if any.
	Comment string
}

// iface is an Interface with its timestamp rules.
type iface struct {
	Interface
	tsBinary bool   // resolution 2^-tsExp rather than 10^-tsExp seconds
	tsExp    uint8  // exponent of the resolution
	tsUnits  uint64 // 10^tsExp, when !tsBinary
	tsOffset int64  // if_tsoffset, seconds
}

// time converts a timestamp in units of the interface's resolution.
func (f *iface) time(ts uint64) time.Time {
	var sec, nsec uint64
	if f.tsBinary {
		sec = ts >> f.tsExp
		frac := ts & (1<<f.tsExp - 1)
		hi, lo := bits.Mul64(frac, 1e9)
		// (hi:lo) >> tsExp; a shift by 64 yields 0 for unsigned values.
		nsec = hi<<(64-f.tsExp) | lo>>f.tsExp
	} else {
		sec = ts / f.tsUnits
		rem := ts % f.tsUnits
		if f.tsExp <= 9 {
			nsec = rem * pow10[9-f.tsExp]
		} else {
			nsec = rem / pow10[f.tsExp-9]
		}
	}
	return time.Unix(int64(sec)+f.tsOffset, int64(nsec)).UTC()
}

var pow10 = [pcapngMaxTSDecimal + 1]uint64{
	1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
}

// A Reader reads packets from a pcap or pcapng stream.
type Reader struct {
	br     *bufio.Reader
	off    int64 // offset in the stream of the next byte br returns
	format Format
	be     bool // the current section (pcapng) or file (pcap) is big-endian
	hdr    [pcapFileHeaderLen]byte
	buf    []byte // block or record contents; grows up to MaxBlockSize
	ifaces []iface
	err    error // sticky error from Next
}

// readerBufferSize is the bufio buffer size: large enough that a typical
// block needs one copy and few reads.
const readerBufferSize = 64 << 10

// NewReader reads the file header of a pcap or pcapng stream (the first
// Section Header Block for pcapng) and returns a Reader positioned at the
// first packet. The format is recognised from the magic number.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{br: bufio.NewReaderSize(r, readerBufferSize)}
	if err := rd.readHeader(); err != nil {
		return nil, err
	}
	return rd, nil
}

// Format returns the format of the file.
func (r *Reader) Format() Format { return r.format }

// NumInterfaces returns the number of interfaces defined so far in the
// current section (always 1 for pcap).
func (r *Reader) NumInterfaces() int { return len(r.ifaces) }

// Interface returns interface i of the current section: the section of the
// packet most recently returned by Next. ok is false if there is no such
// interface.
func (r *Reader) Interface(i int) (ifc Interface, ok bool) {
	if i < 0 || i >= len(r.ifaces) {
		return Interface{}, false
	}
	return r.ifaces[i].Interface, true
}

// Next returns the next packet. It returns io.EOF at the clean end of the
// file, and an error wrapping io.ErrUnexpectedEOF or ErrCorrupt for a
// truncated or damaged one; errors are sticky. p.Data is only valid until
// the next call.
func (r *Reader) Next() (p Packet, err error) {
	if r.err != nil {
		return Packet{}, r.err
	}
	if r.format == FormatPcap {
		p, err = r.nextPcap()
	} else {
		p, err = r.nextPcapNG()
	}
	if err != nil {
		r.err = err
	}
	return p, err
}

func (r *Reader) u16(b []byte) uint16 {
	if r.be {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (r *Reader) u32(b []byte) uint32 {
	if r.be {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

// readHdr reads n bytes into r.hdr. It returns io.EOF only if the stream
// ended before the first byte.
func (r *Reader) readHdr(n int) ([]byte, error) {
	b := r.hdr[:n]
	m, err := io.ReadFull(r.br, b)
	r.off += int64(m)
	return b, err
}

// read reads n bytes into r.buf and returns them. The buffer grows only as
// data arrives, so a length field larger than the rest of the stream costs
// at most about twice the bytes actually present. A stream that ends early
// gives io.ErrUnexpectedEOF.
func (r *Reader) read(n int) ([]byte, error) {
	b := r.buf[:0]
	for len(b) < n {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(max(2*cap(b), 4096), n))
			copy(nb, b)
			b = nb
		}
		m, err := io.ReadFull(r.br, b[len(b):min(cap(b), n)])
		b = b[:len(b)+m]
		r.off += int64(m)
		if err != nil {
			r.buf = b[:0]
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return b, err
		}
	}
	r.buf = b[:0]
	return b, nil
}

// discard skips n bytes.
func (r *Reader) discard(n int) error {
	m, err := r.br.Discard(n)
	r.off += int64(m)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (r *Reader) readHeader() error {
	b, err := r.readHdr(4)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("savefile: reading magic number: %w", err)
	}
	le, be := binary.LittleEndian.Uint32(b), binary.BigEndian.Uint32(b)
	switch {
	case le == pcapMagicMicro || le == pcapMagicNano:
		return r.readPcapHeader(false, le == pcapMagicNano)
	case be == pcapMagicMicro || be == pcapMagicNano:
		return r.readPcapHeader(true, be == pcapMagicNano)
	case le == blockSectionHeader:
		r.format = FormatPcapNG
		_, err := r.readSectionHeader(0)
		return err
	}
	return fmt.Errorf("savefile: unknown magic number 0x%08x: %w", be, ErrUnknownFormat)
}

// readPcapHeader reads the rest of a pcap file header.
func (r *Reader) readPcapHeader(bigEndian, nano bool) error {
	r.format = FormatPcap
	r.be = bigEndian
	if _, err := io.ReadFull(r.br, r.hdr[4:pcapFileHeaderLen]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("savefile: reading pcap file header: %w", err)
	}
	r.off = pcapFileHeaderLen
	h := r.hdr[:pcapFileHeaderLen]
	ifc := iface{
		Interface: Interface{
			Snaplen: r.u32(h[16:]),
			// The upper 16 bits hold the FCS length and reserved bits
			// (draft-ietf-opsawg-pcap section 4, LinkType and additional
			// information).
			LinkType: LinkType(r.u32(h[20:])),
		},
		tsExp:   6,
		tsUnits: 1e6,
	}
	if nano {
		ifc.tsExp, ifc.tsUnits = 9, 1e9
	}
	r.ifaces = append(r.ifaces[:0], ifc)
	return nil
}

func (r *Reader) nextPcap() (Packet, error) {
	start := r.off
	h, err := r.readHdr(pcapRecordHeaderLen)
	if err != nil {
		if err == io.EOF {
			return Packet{}, io.EOF
		}
		return Packet{}, fmt.Errorf("savefile: pcap record at offset %d: truncated record header: %w", start, err)
	}
	sec, frac := r.u32(h[0:]), r.u32(h[4:])
	capLen, origLen := r.u32(h[8:]), r.u32(h[12:])
	if capLen > MaxBlockSize {
		return Packet{}, fmt.Errorf("savefile: pcap record at offset %d: captured length %d exceeds %d: %w",
			start, capLen, MaxBlockSize, ErrCorrupt)
	}
	data, err := r.read(int(capLen))
	if err != nil {
		return Packet{}, fmt.Errorf("savefile: pcap record at offset %d: truncated packet data (want %d bytes): %w",
			start, capLen, err)
	}
	ifc := &r.ifaces[0]
	return Packet{
		Time:     time.Unix(int64(sec), int64(frac)*int64(pow10[9-ifc.tsExp])).UTC(),
		LinkType: ifc.LinkType,
		Data:     data,
		OrigLen:  int(origLen),
	}, nil
}

// blockError formats an error about the pcapng block that starts at off.
func blockError(off int64, err error, format string, args ...any) error {
	return fmt.Errorf("savefile: pcapng block at offset %d: %s: %w", off, fmt.Sprintf(format, args...), err)
}

// readSectionHeader reads a Section Header Block whose 4-byte type field,
// at offset start, has been consumed already.
func (r *Reader) readSectionHeader(start int64) (int, error) {
	h, err := r.readHdr(8) // total length, byte-order magic
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, blockError(start, err, "truncated section header")
	}
	switch {
	case binary.LittleEndian.Uint32(h[4:]) == pcapngByteOrder:
		r.be = false
	case binary.BigEndian.Uint32(h[4:]) == pcapngByteOrder:
		r.be = true
	default:
		return 0, blockError(start, ErrCorrupt, "bad byte-order magic 0x%08x in section header", binary.BigEndian.Uint32(h[4:]))
	}
	length := r.u32(h)
	if err := checkBlockLen(start, length, minBlockLen+shbFixedLen); err != nil {
		return 0, err
	}
	b, err := r.read(int(length) - minBlockLen)
	if err != nil {
		return 0, blockError(start, err, "truncated section header")
	}
	if err := r.checkTrailer(start, length, b); err != nil {
		return 0, err
	}
	if major := r.u16(b); major != pcapngVersionMajor {
		return 0, blockError(start, errors.ErrUnsupported, "pcapng version %d.%d", major, r.u16(b[2:]))
	}
	r.ifaces = r.ifaces[:0]
	return int(length), nil
}

// checkBlockLen validates a block's total length field.
func checkBlockLen(start int64, length uint32, minLen int) error {
	switch {
	case length > MaxBlockSize:
		return blockError(start, ErrCorrupt, "block length %d exceeds %d", length, MaxBlockSize)
	case length < uint32(minLen):
		return blockError(start, ErrCorrupt, "block length %d is less than %d", length, minLen)
	case length%4 != 0:
		return blockError(start, ErrCorrupt, "block length %d is not a multiple of 4", length)
	}
	return nil
}

// checkTrailer checks the trailing copy of the block length at the end of
// b, which holds the block after the header.
func (r *Reader) checkTrailer(start int64, length uint32, b []byte) error {
	if t := r.u32(b[len(b)-blockTrailerLen:]); t != length {
		return blockError(start, ErrCorrupt, "trailing block length %d does not match %d", t, length)
	}
	return nil
}

func (r *Reader) nextPcapNG() (Packet, error) {
	for {
		start := r.off
		h, err := r.readHdr(4)
		if err != nil {
			if err == io.EOF {
				return Packet{}, io.EOF
			}
			return Packet{}, blockError(start, err, "truncated block header")
		}
		typ := r.u32(h)
		if typ == blockSectionHeader {
			if _, err := r.readSectionHeader(start); err != nil {
				return Packet{}, err
			}
			continue
		}
		h, err = r.readHdr(4)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Packet{}, blockError(start, err, "truncated block header")
		}
		length := r.u32(h)
		if err := checkBlockLen(start, length, minBlockLen); err != nil {
			return Packet{}, err
		}
		switch typ {
		case blockInterface, blockEnhancedPacket, blockSimplePacket, blockPacket:
		default:
			// Name resolution (4), interface statistics (5), decryption
			// secrets (10), custom (0xbad, 0x40000bad) and unknown blocks:
			// skip without buffering.
			if err := r.discard(int(length) - minBlockLen); err != nil {
				return Packet{}, blockError(start, err, "truncated block of type 0x%08x", typ)
			}
			t, err := r.readHdr(blockTrailerLen)
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return Packet{}, blockError(start, err, "truncated block of type 0x%08x", typ)
			}
			if err := r.checkTrailer(start, length, t); err != nil {
				return Packet{}, err
			}
			continue
		}
		b, err := r.read(int(length) - blockHeaderLen)
		if err != nil {
			return Packet{}, blockError(start, err, "truncated block of type 0x%08x", typ)
		}
		if err := r.checkTrailer(start, length, b); err != nil {
			return Packet{}, err
		}
		body := b[:len(b)-blockTrailerLen]
		switch typ {
		case blockInterface:
			if err := r.parseInterface(start, body); err != nil {
				return Packet{}, err
			}
		case blockEnhancedPacket:
			return r.parseEnhancedPacket(start, body)
		case blockPacket:
			return r.parsePacket(start, body)
		case blockSimplePacket:
			return r.parseSimplePacket(start, body)
		}
	}
}

// options iterates over pcapng options (draft-ietf-opsawg-pcapng section
// 3.5).
type options struct {
	r   *Reader
	b   []byte
	err error
}

// next returns the next option. ok is false at opt_endofopt, at the end of
// the block, or if an option overruns the block (o.err is set).
func (o *options) next() (code uint16, val []byte, ok bool) {
	if len(o.b) < 4 {
		return 0, nil, false
	}
	code, n := o.r.u16(o.b), int(o.r.u16(o.b[2:]))
	if code == optEndOfOpt {
		return 0, nil, false
	}
	padded := (n + 3) &^ 3
	if 4+padded > len(o.b) {
		o.err = fmt.Errorf("option %d of length %d overruns the block: %w", code, n, ErrCorrupt)
		return 0, nil, false
	}
	val = o.b[4 : 4+n]
	o.b = o.b[4+padded:]
	return code, val, true
}

func (r *Reader) parseInterface(start int64, b []byte) error {
	if len(b) < idbFixedLen {
		return blockError(start, ErrCorrupt, "interface description block too short")
	}
	if len(r.ifaces) >= MaxInterfaces {
		return blockError(start, ErrLimit, "more than %d interface description blocks in one section", MaxInterfaces)
	}
	ifc := iface{
		Interface: Interface{LinkType: LinkType(r.u16(b)), Snaplen: r.u32(b[4:])},
		tsExp:     pcapngDefaultTSResol,
		tsUnits:   pow10[pcapngDefaultTSResol],
	}
	o := options{r: r, b: b[idbFixedLen:]}
	for code, val, ok := o.next(); ok; code, val, ok = o.next() {
		switch code {
		case optIfName:
			ifc.Name = string(val[:min(len(val), MaxInterfaceName)])
		case optIfTSResol:
			if len(val) != 1 {
				return blockError(start, ErrCorrupt, "if_tsresol of length %d", len(val))
			}
			ifc.tsBinary = val[0]&0x80 != 0
			ifc.tsExp = val[0] & 0x7f
			if ifc.tsBinary && ifc.tsExp > pcapngMaxTSBinary || !ifc.tsBinary && ifc.tsExp > pcapngMaxTSDecimal {
				return blockError(start, ErrCorrupt, "unsupported if_tsresol 0x%02x", val[0])
			}
			if !ifc.tsBinary {
				ifc.tsUnits = pow10[ifc.tsExp]
			}
		case optIfTSOff:
			if len(val) != 8 {
				return blockError(start, ErrCorrupt, "if_tsoffset of length %d", len(val))
			}
			if r.be {
				ifc.tsOffset = int64(binary.BigEndian.Uint64(val))
			} else {
				ifc.tsOffset = int64(binary.LittleEndian.Uint64(val))
			}
		}
	}
	if o.err != nil {
		return blockError(start, o.err, "interface description block")
	}
	r.ifaces = append(r.ifaces, ifc)
	return nil
}

// packetOptions reads the options of an Enhanced or obsolete Packet Block.
func (r *Reader) packetOptions(start int64, p *Packet, b []byte) error {
	o := options{r: r, b: b}
	haveComment := false
	for code, val, ok := o.next(); ok; code, val, ok = o.next() {
		switch code {
		case optComment:
			if !haveComment {
				p.Comment, haveComment = string(val), true
			}
		case optEpbFlags:
			if len(val) != 4 {
				return blockError(start, ErrCorrupt, "epb_flags of length %d", len(val))
			}
			p.Direction = Direction(r.u32(val) & epbFlagsDir)
			if p.Direction > DirectionOutbound {
				p.Direction = DirectionUnknown
			}
		}
	}
	if o.err != nil {
		return blockError(start, o.err, "packet block")
	}
	return nil
}

// packetData returns the captured data, of length capLen, at the start of
// b and the options after it.
func packetData(start int64, b []byte, capLen uint32) (data, opts []byte, err error) {
	padded := (uint64(capLen) + 3) &^ 3
	if padded > uint64(len(b)) {
		return nil, nil, blockError(start, ErrCorrupt, "captured length %d exceeds the block", capLen)
	}
	return b[:capLen], b[padded:], nil
}

// iface returns interface id of the current section.
func (r *Reader) iface(start int64, id uint32) (*iface, error) {
	if uint64(id) >= uint64(len(r.ifaces)) {
		return nil, blockError(start, ErrCorrupt, "interface %d is not defined (section has %d)", id, len(r.ifaces))
	}
	return &r.ifaces[id], nil
}

func (r *Reader) parseEnhancedPacket(start int64, b []byte) (Packet, error) {
	if len(b) < epbFixedLen {
		return Packet{}, blockError(start, ErrCorrupt, "enhanced packet block too short")
	}
	return r.parsePacketFields(start, b, r.u32(b), epbFixedLen)
}

func (r *Reader) parsePacket(start int64, b []byte) (Packet, error) {
	if len(b) < pbFixedLen {
		return Packet{}, blockError(start, ErrCorrupt, "packet block too short")
	}
	// The obsolete Packet Block is an EPB with a 16-bit interface id
	// followed by a 16-bit drops count.
	return r.parsePacketFields(start, b, uint32(r.u16(b)), pbFixedLen)
}

// parsePacketFields reads what EPBs and PBs share after the interface id:
// the timestamp, the captured and original lengths, the data and the
// options.
func (r *Reader) parsePacketFields(start int64, b []byte, id uint32, fixedLen int) (Packet, error) {
	ifc, err := r.iface(start, id)
	if err != nil {
		return Packet{}, err
	}
	ts := uint64(r.u32(b[4:]))<<32 | uint64(r.u32(b[8:]))
	data, opts, err := packetData(start, b[fixedLen:], r.u32(b[12:]))
	if err != nil {
		return Packet{}, err
	}
	p := Packet{
		Time:      ifc.time(ts),
		Interface: int(id),
		LinkType:  ifc.LinkType,
		Data:      data,
		OrigLen:   int(r.u32(b[16:])),
	}
	return p, r.packetOptions(start, &p, opts)
}

func (r *Reader) parseSimplePacket(start int64, b []byte) (Packet, error) {
	if len(b) < spbFixedLen {
		return Packet{}, blockError(start, ErrCorrupt, "simple packet block too short")
	}
	ifc, err := r.iface(start, 0)
	if err != nil {
		return Packet{}, err
	}
	// The captured length is implied: the original length, cut to the
	// snaplen of interface 0 and to the block (section 4.4).
	origLen := r.u32(b)
	data := b[spbFixedLen:]
	capLen := uint64(origLen)
	if ifc.Snaplen != 0 {
		capLen = min(capLen, uint64(ifc.Snaplen))
	}
	if capLen < uint64(len(data)) {
		data = data[:capLen]
	}
	return Packet{LinkType: ifc.LinkType, Data: data, OrigLen: int(origLen)}, nil
}
