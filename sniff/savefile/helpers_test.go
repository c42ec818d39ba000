package savefile_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/sniff/savefile"
)

// Test packets: a TCP RST over IPv4 and over IPv6, without link layer.
var (
	// 192.0.2.1:80 -> 198.51.100.7:40000 RST|ACK, 40 bytes.
	ipv4RST = []byte{
		0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, // ver/ihl .. proto, checksum
		192, 0, 2, 1, // source IP
		198, 51, 100, 7, // destination IP
		0x00, 0x50, 0x9c, 0x40, // ports 80 -> 40000
		0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, // seq, ack
		0x50, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // offset, RST|ACK, window, checksum, urgent
	}
	// 2001:db8::1 -> 2001:db8::2 RST, 60 bytes.
	ipv6RST = []byte{
		0x60, 0x00, 0x00, 0x00, 0x00, 0x14, 0x06, 0x40, // version, payload length 20, TCP, hop limit
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // source IP
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // destination IP
		0x01, 0xbb, 0xc3, 0x50, // ports 443 -> 50000
		0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, // seq, ack
		0x50, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // offset, RST, window, checksum, urgent
	}
)

// ether returns an Ethernet frame carrying payload with EtherType et,
// behind the given VLAN tag EtherTypes (each with VLAN ID 100+i).
func ether(et uint16, payload []byte, tags ...uint16) []byte {
	b := []byte{
		0x02, 0, 0, 0, 0, 1, // destination MAC
		0x02, 0, 0, 0, 0, 2, // source MAC
	}
	for i, tpid := range tags {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, uint16(100+i))
	}
	b = binary.BigEndian.AppendUint16(b, et)
	return append(b, payload...)
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// pcapFile builds a classic pcap file.
type pcapFile struct {
	order byteOrder
	nano  bool
	b     []byte
}

func newPcap(order byteOrder, nano bool, lt savefile.LinkType, snaplen uint32) *pcapFile {
	f := &pcapFile{order: order, nano: nano}
	magic := uint32(0xa1b2c3d4)
	if nano {
		magic = 0xa1b23c4d
	}
	f.b = order.AppendUint32(f.b, magic)
	f.b = order.AppendUint16(f.b, 2)
	f.b = order.AppendUint16(f.b, 4)
	f.b = order.AppendUint32(f.b, 0)
	f.b = order.AppendUint32(f.b, 0)
	f.b = order.AppendUint32(f.b, snaplen)
	f.b = order.AppendUint32(f.b, uint32(lt))
	return f
}

func (f *pcapFile) record(sec, frac uint32, data []byte, origLen int) *pcapFile {
	f.b = f.order.AppendUint32(f.b, sec)
	f.b = f.order.AppendUint32(f.b, frac)
	f.b = f.order.AppendUint32(f.b, uint32(len(data)))
	f.b = f.order.AppendUint32(f.b, uint32(origLen))
	f.b = append(f.b, data...)
	return f
}

// ngFile builds a pcapng file; order may change at each section header.
type ngFile struct {
	order byteOrder
	b     []byte
}

// opt encodes one pcapng option with padding, in order.
func opt(order byteOrder, code uint16, val []byte) []byte {
	b := order.AppendUint16(nil, code)
	b = order.AppendUint16(b, uint16(len(val)))
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func (f *ngFile) opt(code uint16, val []byte) []byte { return opt(f.order, code, val) }

func (f *ngFile) u32(v uint32) []byte { return f.order.AppendUint32(nil, v) }

func (f *ngFile) u64(v uint64) []byte { return f.order.AppendUint64(nil, v) }

// block appends a block; body is padded to 4 bytes.
func (f *ngFile) block(typ uint32, body ...[]byte) *ngFile {
	b := cat(body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	n := uint32(12 + len(b))
	f.b = f.order.AppendUint32(f.b, typ)
	f.b = f.order.AppendUint32(f.b, n)
	f.b = append(f.b, b...)
	f.b = f.order.AppendUint32(f.b, n)
	return f
}

// withEnd appends opt_endofopt to a non-empty option list.
func (f *ngFile) withEnd(opts [][]byte) []byte {
	if len(opts) == 0 {
		return nil
	}
	return append(cat(opts...), f.opt(0, nil)...)
}

func (f *ngFile) shb(order byteOrder, opts ...[]byte) *ngFile {
	f.order = order
	var body []byte
	body = order.AppendUint32(body, 0x1a2b3c4d)
	body = order.AppendUint16(body, 1)
	body = order.AppendUint16(body, 0)
	body = order.AppendUint64(body, 0xffffffffffffffff)
	return f.block(0x0a0d0d0a, body, f.withEnd(opts))
}

func (f *ngFile) idb(lt savefile.LinkType, snaplen uint32, opts ...[]byte) *ngFile {
	var body []byte
	body = f.order.AppendUint16(body, uint16(lt))
	body = f.order.AppendUint16(body, 0)
	body = f.order.AppendUint32(body, snaplen)
	return f.block(1, body, f.withEnd(opts))
}

func (f *ngFile) epb(id uint32, ts uint64, data []byte, origLen int, opts ...[]byte) *ngFile {
	return f.block(6, f.packetBody(f.order.AppendUint32(nil, id), ts, data, origLen), f.withEnd(opts))
}

// pb builds an obsolete Packet Block: an EPB with a 16-bit interface id
// followed by a 16-bit drops count.
func (f *ngFile) pb(id uint16, ts uint64, data []byte, origLen int, opts ...[]byte) *ngFile {
	head := f.order.AppendUint16(nil, id)
	head = f.order.AppendUint16(head, 0) // drops
	return f.block(2, f.packetBody(head, ts, data, origLen), f.withEnd(opts))
}

// packetBody appends to head what EPBs and PBs share: the timestamp, the
// lengths and the padded data.
func (f *ngFile) packetBody(head []byte, ts uint64, data []byte, origLen int) []byte {
	body := f.order.AppendUint32(head, uint32(ts>>32))
	body = f.order.AppendUint32(body, uint32(ts))
	body = f.order.AppendUint32(body, uint32(len(data)))
	body = f.order.AppendUint32(body, uint32(origLen))
	body = append(body, data...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	return body
}

func (f *ngFile) spb(origLen int, data []byte) *ngFile {
	return f.block(3, f.u32(uint32(origLen)), data)
}

// readResult is everything a Reader returned for a file.
type readResult struct {
	packets []savefile.Packet
	names   []string // interface name of each packet
	err     error    // the error that ended the loop (io.EOF for a clean end)
}

// readAll reads b to the end, copying packet data.
func readAll(b []byte) readResult {
	var res readResult
	r, err := savefile.NewReader(bytes.NewReader(b))
	if err != nil {
		res.err = err
		return res
	}
	for {
		p, err := r.Next()
		if err != nil {
			res.err = err
			return res
		}
		p.Data = bytes.Clone(p.Data)
		ifc, ok := r.Interface(p.Interface)
		if !ok {
			res.err = fmt.Errorf("packet %d: no interface %d", len(res.packets), p.Interface)
			return res
		}
		if ifc.LinkType != p.LinkType {
			res.err = fmt.Errorf("packet %d: link type %v, interface says %v", len(res.packets), p.LinkType, ifc.LinkType)
			return res
		}
		res.packets = append(res.packets, p)
		res.names = append(res.names, ifc.Name)
	}
}

// diffPackets describes the differences between two packet lists.
func diffPackets(want, got []savefile.Packet) string {
	var buf bytes.Buffer
	for i := range max(len(want), len(got)) {
		switch {
		case i >= len(got):
			fmt.Fprintf(&buf, "packet %d: missing, want %s\n", i, fmtPacket(want[i]))
		case i >= len(want):
			fmt.Fprintf(&buf, "packet %d: unexpected %s\n", i, fmtPacket(got[i]))
		case !equalPacket(want[i], got[i]):
			fmt.Fprintf(&buf, "packet %d:\n-want %s\n+got  %s\n", i, fmtPacket(want[i]), fmtPacket(got[i]))
		}
	}
	return buf.String()
}

func equalPacket(a, b savefile.Packet) bool {
	return a.Time.Equal(b.Time) && a.Interface == b.Interface && a.LinkType == b.LinkType &&
		bytes.Equal(a.Data, b.Data) && a.OrigLen == b.OrigLen && a.Direction == b.Direction &&
		a.Comment == b.Comment
}

func fmtPacket(p savefile.Packet) string {
	return fmt.Sprintf("{Time:%s If:%d %v len:%d orig:%d %v %q data:%x}",
		p.Time.UTC().Format(time.RFC3339Nano), p.Interface, p.LinkType, len(p.Data), p.OrigLen,
		p.Direction, p.Comment, p.Data)
}

// checkReadErr fails unless err is a clean io.EOF.
func checkReadErr(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, io.EOF) {
		t.Fatalf("failed to read file: %v", err)
	}
}

// byteOrder is binary.BigEndian or binary.LittleEndian.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}
