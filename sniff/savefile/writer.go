package savefile

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"time"
)

// CaptureInfo describes a packet for a Writer.
type CaptureInfo struct {
	// Time is the capture time. Times before 1970 are written as 0.
	Time time.Time
	// Ifindex and Ifname identify the capturing interface. PcapNGWriter
	// writes one Interface Description Block per distinct pair, named
	// Ifname; PcapWriter stores Ifindex in the LINUX_SLL2 header.
	Ifindex int
	Ifname  string
	// Direction is stored in epb_flags (pcapng) or as the SLL2 packet type
	// (pcap: PACKET_OUTGOING for outbound, else PACKET_HOST).
	Direction Direction
	// OrigLen is the length of the packet on the wire. 0 or less than
	// len(ip) means len(ip).
	OrigLen int
	// Comment is written as the packet's opt_comment (pcapng only); at
	// most 65535 bytes.
	Comment string
	// CommentBytes, when Comment is empty, is written as Comment would
	// be: for a caller that builds comments in a buffer it reuses, so
	// that writing a packet allocates nothing. It is copied at once.
	CommentBytes []byte
	// HAType is the ARPHRD_ hardware type for the LINUX_SLL2 header (pcap
	// only). 0 means ARPHRDNone.
	HAType uint16
}

// A Writer writes bare IPv4/IPv6 packets, as captured by an AF_PACKET
// SOCK_DGRAM socket, to a capture file.
//
// Output is buffered: blocks are built in place in one buffer, which goes
// to the underlying writer in a single Write when it holds WriteAt bytes or
// on Flush, so a storm costs one write(2) per few hundred KB, and nothing
// is allocated per packet. Call Flush before closing the underlying file.
// After a write error the Writer stops writing and returns that error from
// every later call, so the file ends on a block boundary unless the
// underlying Write itself stored only part of a buffer.
type Writer interface {
	// WritePacket writes one packet. ip must start with the IP header.
	WritePacket(ci CaptureInfo, ip []byte) error
	// Flush writes buffered blocks to the underlying writer and reports
	// any error, such as a full disk, from this or an earlier write.
	Flush() error
}

var (
	_ Writer = (*PcapNGWriter)(nil)
	_ Writer = (*PcapWriter)(nil)
)

// Writer limits.
const (
	// MaxPacketSize is the largest packet the writers accept; the blocks
	// that hold it stay below MaxBlockSize, so a Reader can read them.
	MaxPacketSize = MaxBlockSize - 64<<10
	maxOptionLen  = 0xffff
	// WriteAt is how many buffered bytes make a WritePacket write them
	// out, in one write(2): about three ring blocks of a reset storm. Each
	// write(2) in a storm also wakes the Go runtime's monitor thread,
	// which then polls for a millisecond; at 256 KiB that cost a tenth of
	// -w's CPU.
	WriteAt = 1 << 20
	// pcapSnaplen is the snaplen in the pcap file header: tcpdump's
	// MAXIMUM_SNAPLEN.
	pcapSnaplen = 262144
	// userAppl is written as shb_userappl.
	userAppl = "rstwatch"
	// tsResolNano is the if_tsresol value for nanoseconds.
	tsResolNano = 9
)

// blockWriter is the part the two writers share: the buffer of whole
// blocks not yet written, and a sticky error.
type blockWriter struct {
	dst io.Writer
	buf []byte
	err error
}

func (w *blockWriter) init(dst io.Writer) {
	w.dst = dst
	// Room for WriteAt bytes and the block that crosses it.
	w.buf = make([]byte, 0, WriteAt+16<<10)
}

// wrote ends a WritePacket that appended a block to buf: the buffer is
// written out once it holds WriteAt bytes.
func (w *blockWriter) wrote() error {
	if len(w.buf) < WriteAt {
		return nil
	}
	return w.write("write")
}

// write writes the buffer with a single Write.
func (w *blockWriter) write(op string) error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.dst.Write(w.buf)
	if cap(w.buf) > 4*WriteAt {
		// A huge packet grew the buffer: give that memory back.
		w.buf = make([]byte, 0, WriteAt+16<<10)
	}
	w.buf = w.buf[:0]
	if err != nil {
		w.err = fmt.Errorf("savefile: %s: %w", op, err)
	}
	return w.err
}

// Flush implements Writer.
func (w *blockWriter) Flush() error {
	if w.err != nil {
		return w.err
	}
	return w.write("flush")
}

// checkPacket validates the arguments of WritePacket.
func checkPacket(ci *CaptureInfo, ip []byte) error {
	if len(ip) > MaxPacketSize {
		return fmt.Errorf("savefile: packet of %d bytes exceeds %d", len(ip), MaxPacketSize)
	}
	if n := max(len(ci.Comment), len(ci.CommentBytes)); n > maxOptionLen {
		return fmt.Errorf("savefile: comment of %d bytes exceeds %d", n, maxOptionLen)
	}
	if len(ci.Ifname) > maxOptionLen {
		return fmt.Errorf("savefile: interface name of %d bytes exceeds %d", len(ci.Ifname), maxOptionLen)
	}
	return nil
}

func origLen(ci *CaptureInfo, n int) uint32 {
	if ci.OrigLen < n {
		return uint32(n)
	}
	return uint32(min(int64(ci.OrigLen), 0xffffffff))
}

func unixNano(t time.Time) uint64 {
	if t.Unix() < 0 {
		return 0
	}
	return uint64(t.UnixNano())
}

var le = binary.LittleEndian

// appendOption appends a pcapng option with its padding.
func appendOption[T string | []byte](b []byte, code uint16, val T) []byte {
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, uint16(len(val)))
	b = append(b, val...)
	return appendPad(b, len(val))
}

func appendPad(b []byte, n int) []byte {
	var zero [3]byte
	return append(b, zero[:(4-n%4)%4]...)
}

// finishBlock fills in the total length of the block that starts at
// b[start:] (with type and a placeholder length) and appends the trailing
// copy.
func finishBlock(b []byte, start int) []byte {
	n := uint32(len(b) - start + blockTrailerLen)
	le.PutUint32(b[start+4:], n)
	return le.AppendUint32(b, n)
}

// PcapNGWriter writes a little-endian pcapng file with a single section,
// LINKTYPE_RAW interfaces with nanosecond timestamps, and Enhanced Packet
// Blocks.
type PcapNGWriter struct {
	blockWriter
	ifaces map[ifaceKey]uint32
	last   ifaceKey // cache of the most recent interface
	lastID uint32
}

type ifaceKey struct {
	index int
	name  string
}

// NewPcapNGWriter returns a PcapNGWriter that writes to w, starting with the
// Section Header Block. Errors writing it are reported by the first
// WritePacket or Flush.
func NewPcapNGWriter(w io.Writer) *PcapNGWriter {
	pw := &PcapNGWriter{ifaces: make(map[ifaceKey]uint32)}
	pw.init(w)
	b := le.AppendUint32(pw.buf, blockSectionHeader)
	b = le.AppendUint32(b, 0) // length
	b = le.AppendUint32(b, pcapngByteOrder)
	b = le.AppendUint16(b, pcapngVersionMajor)
	b = le.AppendUint16(b, 0)                  // minor version
	b = le.AppendUint64(b, 0xffffffffffffffff) // section length: not given
	b = appendOption(b, optShbUserAp, userAppl)
	b = appendOption(b, optEndOfOpt, "")
	pw.buf = finishBlock(b, 0)
	return pw
}

// WritePacket implements Writer.
func (w *PcapNGWriter) WritePacket(ci CaptureInfo, ip []byte) error {
	if w.err != nil {
		return w.err
	}
	if err := checkPacket(&ci, ip); err != nil {
		return err
	}
	id, err := w.interfaceID(ci.Ifindex, ci.Ifname)
	if err != nil {
		return err
	}
	// The block's size is known up front: the buffer grows once and the
	// fields are stored in place, which in a storm costs half what an
	// append per field did.
	clen := len(ci.Comment)
	if clen == 0 {
		clen = len(ci.CommentBytes)
	}
	dir := ci.Direction != DirectionUnknown
	size := epbHeaderLen + pad4(len(ip)) + blockTrailerLen
	if clen > 0 {
		size += 4 + pad4(clen)
	}
	if dir {
		size += 8
	}
	if clen > 0 || dir {
		size += 4 // opt_endofopt
	}
	start := len(w.buf)
	w.buf = slices.Grow(w.buf, size)[:start+size]
	b := w.buf[start:]
	ts := unixNano(ci.Time)
	le.PutUint32(b[0:], blockEnhancedPacket)
	le.PutUint32(b[4:], uint32(size))
	le.PutUint32(b[8:], id)
	le.PutUint32(b[12:], uint32(ts>>32))
	le.PutUint32(b[16:], uint32(ts))
	le.PutUint32(b[20:], uint32(len(ip)))
	le.PutUint32(b[24:], origLen(&ci, len(ip)))
	off := epbHeaderLen + putPadded(b[epbHeaderLen:], ip)
	if clen > 0 {
		le.PutUint16(b[off:], optComment)
		le.PutUint16(b[off+2:], uint16(clen))
		if ci.Comment != "" {
			off += 4 + putPadded(b[off+4:], ci.Comment)
		} else {
			off += 4 + putPadded(b[off+4:], ci.CommentBytes)
		}
	}
	if dir {
		le.PutUint16(b[off:], optEpbFlags)
		le.PutUint16(b[off+2:], 4)
		le.PutUint32(b[off+4:], uint32(ci.Direction)&epbFlagsDir)
		off += 8
	}
	if clen > 0 || dir {
		le.PutUint32(b[off:], 0) // opt_endofopt, length 0
		off += 4
	}
	le.PutUint32(b[off:], uint32(size))
	return w.wrote()
}

// epbHeaderLen is an Enhanced Packet Block's fixed part: type, length,
// interface, timestamp (2 words), captured and original length.
const epbHeaderLen = 28

// pad4 rounds n up to a multiple of 4.
func pad4(n int) int { return (n + 3) &^ 3 }

// putPadded copies v to b and zeroes the padding after it (the buffer is
// reused), returning the padded length.
func putPadded[T string | []byte](b []byte, v T) int {
	n := copy(b, v)
	p := pad4(n)
	clear(b[n:p])
	return p
}

// interfaceID returns the ID of the interface, writing its Interface
// Description Block the first time it is seen.
func (w *PcapNGWriter) interfaceID(index int, name string) (uint32, error) {
	if len(w.ifaces) > 0 && w.last.index == index && w.last.name == name {
		return w.lastID, nil
	}
	k := ifaceKey{index, name}
	id, ok := w.ifaces[k]
	if !ok {
		id = uint32(len(w.ifaces))
		start := len(w.buf)
		b := le.AppendUint32(w.buf, blockInterface)
		b = le.AppendUint32(b, 0) // length
		b = le.AppendUint16(b, uint16(LinkTypeRaw))
		b = le.AppendUint16(b, 0) // reserved
		b = le.AppendUint32(b, 0) // snaplen: no limit
		if name != "" {
			b = appendOption(b, optIfName, name)
		}
		b = le.AppendUint16(b, optIfTSResol)
		b = le.AppendUint16(b, 1)
		b = append(b, tsResolNano, 0, 0, 0)
		b = appendOption(b, optEndOfOpt, "")
		w.buf = finishBlock(b, start)
		w.ifaces[k] = id
	}
	w.last, w.lastID = k, id
	return id, nil
}

// PcapWriter writes a little-endian classic pcap file with nanosecond
// timestamps and LINKTYPE_LINUX_SLL2 frames, whose 20-byte header carries
// the interface index, the direction as packet type, and the EtherType.
type PcapWriter struct {
	blockWriter
}

// NewPcapWriter returns a PcapWriter that writes to w, starting with the file
// header. Errors writing it are reported by the first WritePacket or Flush.
func NewPcapWriter(w io.Writer) *PcapWriter {
	pw := &PcapWriter{}
	pw.init(w)
	b := le.AppendUint32(pw.buf, pcapMagicNano)
	b = le.AppendUint16(b, 2) // version 2.4
	b = le.AppendUint16(b, 4)
	b = le.AppendUint32(b, 0) // thiszone (unused)
	b = le.AppendUint32(b, 0) // sigfigs (unused)
	b = le.AppendUint32(b, pcapSnaplen)
	b = le.AppendUint32(b, uint32(LinkTypeLinuxSLL2))
	pw.buf = b
	return pw
}

// WritePacket implements Writer.
func (w *PcapWriter) WritePacket(ci CaptureInfo, ip []byte) error {
	if w.err != nil {
		return w.err
	}
	if err := checkPacket(&ci, ip); err != nil {
		return err
	}
	ts := unixNano(ci.Time)
	b := le.AppendUint32(w.buf, uint32(ts/1e9))
	b = le.AppendUint32(b, uint32(ts%1e9))
	b = le.AppendUint32(b, uint32(sll2HeaderLen+len(ip)))
	b = le.AppendUint32(b, sll2HeaderLen+origLen(&ci, len(ip)))

	// The LINUX_SLL2 header is in network byte order.
	var proto uint16
	if len(ip) > 0 {
		switch ip[0] >> 4 {
		case 4:
			proto = EtherTypeIPv4
		case 6:
			proto = EtherTypeIPv6
		}
	}
	hatype := ci.HAType
	if hatype == 0 {
		hatype = ARPHRDNone
	}
	pkttype := byte(PacketHost)
	if ci.Direction == DirectionOutbound {
		pkttype = PacketOutgoing
	}
	b = binary.BigEndian.AppendUint16(b, proto)
	b = binary.BigEndian.AppendUint16(b, 0) // reserved
	b = binary.BigEndian.AppendUint32(b, uint32(ci.Ifindex))
	b = binary.BigEndian.AppendUint16(b, hatype)
	b = append(b, pkttype, 0) // packet type, address length
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b = append(b, ip...)
	w.buf = b
	return w.wrote()
}
