package savefile

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
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
	// HAType is the ARPHRD_ hardware type for the LINUX_SLL2 header (pcap
	// only). 0 means ARPHRDNone.
	HAType uint16
}

// A Writer writes bare IPv4/IPv6 packets, as captured by an AF_PACKET
// SOCK_DGRAM socket, to a capture file.
//
// Output is buffered; call Flush before closing the underlying file. After
// a write error the Writer stops writing and returns that error from every
// later call, so the file ends on a block boundary unless the underlying
// Write itself stored only part of a buffer.
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
	// writerBufferSize is the bufio buffer size of the writers.
	writerBufferSize = 64 << 10
	// pcapSnaplen is the snaplen in the pcap file header: tcpdump's
	// MAXIMUM_SNAPLEN.
	pcapSnaplen = 262144
	// userAppl is written as shb_userappl.
	userAppl = "rstwatch"
	// tsResolNano is the if_tsresol value for nanoseconds.
	tsResolNano = 9
)

// blockWriter is the part the two writers share: a bufio.Writer that takes
// whole blocks, and a sticky error.
type blockWriter struct {
	bw  *bufio.Writer
	blk []byte // the block being built; reused
	err error
}

func (w *blockWriter) init(dst io.Writer) {
	w.bw = bufio.NewWriterSize(dst, writerBufferSize)
	w.blk = make([]byte, 0, 4096)
}

// writeBlock writes b with a single Write to the underlying writer, or
// stores it whole in the buffer: a block never straddles two Writes.
func (w *blockWriter) writeBlock(b []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(b) > w.bw.Available() && w.bw.Buffered() > 0 {
		if err := w.bw.Flush(); err != nil {
			w.err = fmt.Errorf("savefile: write: %w", err)
			return w.err
		}
	}
	// With an empty buffer, bufio writes a block larger than the buffer
	// straight through in one Write.
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("savefile: write: %w", err)
		return w.err
	}
	return nil
}

// Flush implements Writer.
func (w *blockWriter) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("savefile: flush: %w", err)
		return w.err
	}
	return nil
}

// checkPacket validates the arguments of WritePacket.
func checkPacket(ci *CaptureInfo, ip []byte) error {
	if len(ip) > MaxPacketSize {
		return fmt.Errorf("savefile: packet of %d bytes exceeds %d", len(ip), MaxPacketSize)
	}
	if len(ci.Comment) > maxOptionLen {
		return fmt.Errorf("savefile: comment of %d bytes exceeds %d", len(ci.Comment), maxOptionLen)
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
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

var le = binary.LittleEndian

// appendOption appends a pcapng option with its padding.
func appendOption(b []byte, code uint16, val string) []byte {
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, uint16(len(val)))
	b = append(b, val...)
	return appendPad(b, len(val))
}

func appendPad(b []byte, n int) []byte {
	var zero [3]byte
	return append(b, zero[:(4-n%4)%4]...)
}

// finishBlock fills in the total length of the block in b (which starts
// with type and a placeholder length) and appends the trailing copy.
func finishBlock(b []byte) []byte {
	n := uint32(len(b) + blockTrailerLen)
	le.PutUint32(b[4:], n)
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
	b := le.AppendUint32(pw.blk[:0], blockSectionHeader)
	b = le.AppendUint32(b, 0) // length
	b = le.AppendUint32(b, pcapngByteOrder)
	b = le.AppendUint16(b, pcapngVersionMajor)
	b = le.AppendUint16(b, 0)                  // minor version
	b = le.AppendUint64(b, 0xffffffffffffffff) // section length: not given
	b = appendOption(b, optShbUserAp, userAppl)
	b = appendOption(b, optEndOfOpt, "")
	pw.blk = finishBlock(b)
	_ = pw.writeBlock(pw.blk)
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
	ts := unixNano(ci.Time)
	b := le.AppendUint32(w.blk[:0], blockEnhancedPacket)
	b = le.AppendUint32(b, 0) // length
	b = le.AppendUint32(b, id)
	b = le.AppendUint32(b, uint32(ts>>32))
	b = le.AppendUint32(b, uint32(ts))
	b = le.AppendUint32(b, uint32(len(ip)))
	b = le.AppendUint32(b, origLen(&ci, len(ip)))
	b = append(b, ip...)
	b = appendPad(b, len(ip))
	if ci.Comment != "" || ci.Direction != DirectionUnknown {
		if ci.Comment != "" {
			b = appendOption(b, optComment, ci.Comment)
		}
		if ci.Direction != DirectionUnknown {
			b = le.AppendUint16(b, optEpbFlags)
			b = le.AppendUint16(b, 4)
			b = le.AppendUint32(b, uint32(ci.Direction)&epbFlagsDir)
		}
		b = appendOption(b, optEndOfOpt, "")
	}
	w.blk = finishBlock(b)
	return w.writeBlock(w.blk)
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
		b := le.AppendUint32(w.blk[:0], blockInterface)
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
		w.blk = finishBlock(b)
		if err := w.writeBlock(w.blk); err != nil {
			return 0, err
		}
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
	b := le.AppendUint32(pw.blk[:0], pcapMagicNano)
	b = le.AppendUint16(b, 2) // version 2.4
	b = le.AppendUint16(b, 4)
	b = le.AppendUint32(b, 0) // thiszone (unused)
	b = le.AppendUint32(b, 0) // sigfigs (unused)
	b = le.AppendUint32(b, pcapSnaplen)
	b = le.AppendUint32(b, uint32(LinkTypeLinuxSLL2))
	pw.blk = b
	_ = pw.writeBlock(pw.blk)
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
	b := le.AppendUint32(w.blk[:0], uint32(ts/1e9))
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
	w.blk = b
	return w.writeBlock(w.blk)
}
