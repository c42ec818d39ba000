package savefile_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/sniff/savefile"
)

var (
	be byteOrder = binary.BigEndian
	le byteOrder = binary.LittleEndian
)

// Hand-written pcap files, byte by byte.
var (
	// Little-endian, microseconds, raw IP: one IPv4 RST.
	pcapLEMicro = cat([]byte{
		0xd4, 0xc3, 0xb2, 0xa1, // magic 0xa1b2c3d4, little-endian: microseconds
		0x02, 0x00, 0x04, 0x00, // version 2.4
		0x00, 0x00, 0x00, 0x00, // thiszone
		0x00, 0x00, 0x00, 0x00, // sigfigs
		0xff, 0xff, 0x00, 0x00, // snaplen 65535
		0x65, 0x00, 0x00, 0x00, // link type 101, RAW
		// record
		0x00, 0xf1, 0x53, 0x65, // seconds 1700000000
		0x40, 0xe2, 0x01, 0x00, // microseconds 123456
		0x28, 0x00, 0x00, 0x00, // captured length 40
		0x28, 0x00, 0x00, 0x00, // original length 40
	}, ipv4RST)

	// Big-endian, nanoseconds, Ethernet: one IPv6 RST cut to 54 bytes.
	pcapBENano = cat([]byte{
		0xa1, 0xb2, 0x3c, 0x4d, // magic 0xa1b23c4d, big-endian: nanoseconds
		0x00, 0x02, 0x00, 0x04, // version 2.4
		0x00, 0x00, 0x00, 0x00, // thiszone
		0x00, 0x00, 0x00, 0x00, // sigfigs
		0x00, 0x00, 0x00, 0x36, // snaplen 54
		0x10, 0x00, 0x00, 0x01, // FCS bits (0x1000....) and link type 1, EN10MB
		// record
		0x65, 0x53, 0xf1, 0x00, // seconds 1700000000
		0x07, 0x5b, 0xcd, 0x15, // nanoseconds 123456789
		0x00, 0x00, 0x00, 0x36, // captured length 54
		0x00, 0x00, 0x00, 0x4a, // original length 74
	}, ether(savefile.EtherTypeIPv6, ipv6RST)[:54])
)

var t0 = time.Unix(1700000000, 0).UTC()

// pcapngLE is a little-endian pcapng file with two interfaces, every kind
// of packet block, and blocks the reader must skip.
func pcapngLE() []byte {
	var f ngFile
	f.shb(le, opt(le, 4, []byte("test"))) // shb_userappl
	f.idb(savefile.LinkTypeEthernet, 0, f.opt(2, []byte("eth0")))
	f.block(4, f.u32(0))                        // name resolution block: just nrb_record_end
	f.block(0x00000bad, f.u32(32473), f.u32(7)) // custom block: PEN, payload
	f.block(0x7fff1234, []byte("unknown!"))     // a type nobody defined
	f.idb(savefile.LinkTypeRaw, 0,
		f.opt(2, []byte("tun0")),
		f.opt(9, []byte{9}),    // if_tsresol: nanoseconds
		f.opt(14, f.u64(3600))) // if_tsoffset: one hour
	f.epb(0, 1700000000_123456, ether(savefile.EtherTypeIPv4, ipv4RST), 54,
		f.opt(1, []byte("first")),
		f.opt(1, []byte("second comment ignored")),
		f.opt(2, f.u32(1))) // epb_flags: inbound
	f.block(5, f.u32(1), f.u32(0), f.u32(0))                              // interface statistics
	f.epb(1, 1700000000_000000001, ipv6RST, 60, f.opt(2, f.u32(0x2|0x4))) // outbound, multicast
	f.spb(60, ipv6RST)                                                    // interface 0 has no snaplen
	f.pb(1, 1700000000_000000005, ipv4RST[:30], 40, f.opt(2, f.u32(2)))
	f.epb(0, 0, nil, 0) // empty packet
	return f.b
}

// pcapngSections has a little-endian and a big-endian section whose
// interfaces both start at index 0, and power-of-two resolutions.
func pcapngSections() []byte {
	var f ngFile
	f.shb(le)
	f.idb(savefile.LinkTypeRaw, 0, f.opt(2, []byte("le0")))
	f.epb(0, 1700000000_000000, ipv4RST, 40)
	f.shb(be)
	f.idb(savefile.LinkTypeLinuxSLL2, 0, f.opt(2, []byte("be0")), f.opt(9, []byte{0x80 | 10})) // 2^-10 s
	f.idb(savefile.LinkTypeRaw, 41, f.opt(2, []byte("be1")), f.opt(9, []byte{0x80 | 32}))      // 2^-32 s
	f.epb(1, 1700000000<<32|1<<31, ipv6RST, 60)                                                // x.5 s
	f.epb(0, 1700000000<<10|3, ipv4RST, 40)                                                    // x + 3/1024 s
	f.spb(60, ipv6RST)                                                                         // cut to if 0's snaplen? none: 0
	f.shb(le)
	f.idb(savefile.LinkTypeRaw, 20, f.opt(9, []byte{12}), f.opt(14, f.u64(1700000000))) // picoseconds, no name
	f.epb(0, 123456789_012, ipv4RST, 40)
	f.spb(40, ipv4RST) // cut to snaplen 20
	return f.b
}

// pcapngBigEndian is pcapngLE's counterpart in big-endian byte order.
func pcapngBigEndian() []byte {
	var f ngFile
	f.shb(be)
	f.idb(savefile.LinkTypeLinuxSLL, 0, f.opt(2, []byte("any")), f.opt(9, []byte{3})) // milliseconds
	f.epb(0, 1700000000_250, ipv4RST, 40, f.opt(1, []byte("ms")))
	return f.b
}

func TestReaderFixtures(t *testing.T) {
	tests := []struct {
		name   string
		file   []byte
		format savefile.Format
		want   []savefile.Packet
		names  []string
	}{
		{
			name:   "pcap little-endian microseconds",
			file:   pcapLEMicro,
			format: savefile.FormatPcap,
			want: []savefile.Packet{
				{Time: t0.Add(123456 * time.Microsecond), LinkType: savefile.LinkTypeRaw, Data: ipv4RST, OrigLen: 40},
			},
			names: []string{""},
		},
		{
			name:   "pcap big-endian nanoseconds",
			file:   pcapBENano,
			format: savefile.FormatPcap,
			want: []savefile.Packet{
				{Time: t0.Add(123456789), LinkType: savefile.LinkTypeEthernet, Data: ether(savefile.EtherTypeIPv6, ipv6RST)[:54], OrigLen: 74},
			},
			names: []string{""},
		},
		{
			name: "pcap big-endian microseconds",
			file: newPcap(be, false, savefile.LinkTypeNull, 0).
				record(1700000000, 999999, cat([]byte{0, 0, 0, 2}, ipv4RST), 44).
				record(1700000001, 0, cat([]byte{0, 0, 0, 30}, ipv6RST), 64).b,
			format: savefile.FormatPcap,
			want: []savefile.Packet{
				{Time: t0.Add(999999 * time.Microsecond), LinkType: savefile.LinkTypeNull, Data: cat([]byte{0, 0, 0, 2}, ipv4RST), OrigLen: 44},
				{Time: t0.Add(time.Second), LinkType: savefile.LinkTypeNull, Data: cat([]byte{0, 0, 0, 30}, ipv6RST), OrigLen: 64},
			},
			names: []string{"", ""},
		},
		{
			name:   "pcap little-endian nanoseconds, no packets",
			file:   newPcap(le, true, savefile.LinkTypeLinuxSLL2, 0).b,
			format: savefile.FormatPcap,
		},
		{
			name:   "pcapng little-endian",
			file:   pcapngLE(),
			format: savefile.FormatPcapNG,
			want: []savefile.Packet{
				{
					Time: t0.Add(123456 * time.Microsecond), Interface: 0, LinkType: savefile.LinkTypeEthernet,
					Data: ether(savefile.EtherTypeIPv4, ipv4RST), OrigLen: 54, Direction: savefile.DirectionInbound, Comment: "first",
				},
				{
					Time: t0.Add(time.Hour + 1), Interface: 1, LinkType: savefile.LinkTypeRaw,
					Data: ipv6RST, OrigLen: 60, Direction: savefile.DirectionOutbound,
				},
				{LinkType: savefile.LinkTypeEthernet, Data: ipv6RST, OrigLen: 60},
				{
					Time: time.Unix(1700000000+3600, 5).UTC(), Interface: 1, LinkType: savefile.LinkTypeRaw,
					Data: ipv4RST[:30], OrigLen: 40, Direction: savefile.DirectionOutbound,
				},
				{Time: time.Unix(0, 0).UTC(), LinkType: savefile.LinkTypeEthernet, Data: []byte{}},
			},
			names: []string{"eth0", "tun0", "eth0", "tun0", "eth0"},
		},
		{
			name:   "pcapng sections of both byte orders",
			file:   pcapngSections(),
			format: savefile.FormatPcapNG,
			want: []savefile.Packet{
				{Time: t0, LinkType: savefile.LinkTypeRaw, Data: ipv4RST, OrigLen: 40},
				{Time: t0.Add(500 * time.Millisecond), Interface: 1, LinkType: savefile.LinkTypeRaw, Data: ipv6RST, OrigLen: 60},
				{Time: t0.Add(2929687), LinkType: savefile.LinkTypeLinuxSLL2, Data: ipv4RST, OrigLen: 40}, // 3/1024 s, truncated to ns
				{LinkType: savefile.LinkTypeLinuxSLL2, Data: ipv6RST, OrigLen: 60},
				{Time: t0.Add(123456789), LinkType: savefile.LinkTypeRaw, Data: ipv4RST, OrigLen: 40},
				{LinkType: savefile.LinkTypeRaw, Data: ipv4RST[:20], OrigLen: 40},
			},
			names: []string{"le0", "be1", "be0", "be0", "", ""},
		},
		{
			name:   "pcapng big-endian milliseconds",
			file:   pcapngBigEndian(),
			format: savefile.FormatPcapNG,
			want: []savefile.Packet{
				{Time: t0.Add(250 * time.Millisecond), LinkType: savefile.LinkTypeLinuxSLL, Data: ipv4RST, OrigLen: 40, Comment: "ms"},
			},
			names: []string{"any"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := savefile.NewReader(bytes.NewReader(tt.file))
			if err != nil {
				t.Fatalf("failed to open file: %v", err)
			}
			if got := r.Format(); got != tt.format {
				t.Errorf("got Format() = %v, want = %v", got, tt.format)
			}
			res := readAll(tt.file)
			checkReadErr(t, res.err)
			if d := diffPackets(tt.want, res.packets); d != "" {
				t.Errorf("unexpected packets (-want +got):\n%s", d)
			}
			if strings.Join(res.names, ",") != strings.Join(tt.names, ",") {
				t.Errorf("got interface names %q, want = %q", res.names, tt.names)
			}
		})
	}
}

func TestReaderInterface(t *testing.T) {
	r, err := savefile.NewReader(bytes.NewReader(pcapBENano))
	if err != nil {
		t.Fatalf("failed to open file: %v", err)
	}
	want := savefile.Interface{LinkType: savefile.LinkTypeEthernet, Snaplen: 54}
	if got, ok := r.Interface(0); !ok || got != want {
		t.Errorf("got Interface(0) = %+v, %t, want = %+v, true", got, ok, want)
	}
	if _, ok := r.Interface(1); ok {
		t.Error("got Interface(1) ok for a pcap file")
	}
	if _, ok := r.Interface(-1); ok {
		t.Error("got Interface(-1) ok")
	}

	// Interfaces belong to the section of the last packet.
	r, err = savefile.NewReader(bytes.NewReader(pcapngSections()))
	if err != nil {
		t.Fatalf("failed to open file: %v", err)
	}
	if n := r.NumInterfaces(); n != 0 {
		t.Errorf("got NumInterfaces() = %d before the first packet, want = 0", n)
	}
	for range 2 {
		if _, err := r.Next(); err != nil {
			t.Fatalf("failed to read packet: %v", err)
		}
	}
	want = savefile.Interface{Name: "be1", LinkType: savefile.LinkTypeRaw, Snaplen: 41}
	if got, ok := r.Interface(1); !ok || got != want || r.NumInterfaces() != 2 {
		t.Errorf("got Interface(1) = %+v, %t (of %d), want = %+v, true (of 2)", got, ok, r.NumInterfaces(), want)
	}
}

// corrupt returns a copy of b with v written at off in order.
func corrupt(b []byte, off int, order byteOrder, v uint32) []byte {
	b = bytes.Clone(b)
	order.PutUint32(b[off:], v)
	return b
}

func TestReaderErrors(t *testing.T) {
	// Offsets in pcapngBigEndian: SHB 0-27, IDB 28-67, EPB 68-.
	ng := pcapngBigEndian()
	tests := []struct {
		name    string
		file    []byte
		open    bool // the error comes from NewReader
		wantErr error
		wantMsg string
	}{
		{name: "empty", file: nil, open: true, wantErr: io.ErrUnexpectedEOF, wantMsg: "magic number"},
		{name: "unknown magic", file: []byte("GIF89a..."), open: true, wantErr: savefile.ErrUnknownFormat, wantMsg: "0x47494638"},
		{name: "short pcap header", file: pcapLEMicro[:20], open: true, wantErr: io.ErrUnexpectedEOF},
		{
			name:    "pcap captured length 4 GiB",
			file:    corrupt(pcapLEMicro, 24+8, le, 0xffffffff),
			wantErr: savefile.ErrCorrupt,
			wantMsg: "savefile: pcap record at offset 24: captured length 4294967295 exceeds 16777216: corrupt file",
		},
		{
			name:    "pcap truncated data",
			file:    pcapLEMicro[:len(pcapLEMicro)-1],
			wantErr: io.ErrUnexpectedEOF,
			wantMsg: "pcap record at offset 24: truncated packet data (want 40 bytes)",
		},
		{
			name:    "pcapng block length 4 GiB",
			file:    corrupt(ng, 28+4, be, 0xffffffff),
			wantErr: savefile.ErrCorrupt,
			wantMsg: "savefile: pcapng block at offset 28: block length 4294967295 exceeds 16777216: corrupt file",
		},
		{
			name:    "pcapng section header length 4 GiB",
			file:    corrupt(ng, 4, be, 0xffffffff),
			open:    true,
			wantErr: savefile.ErrCorrupt,
			wantMsg: "pcapng block at offset 0: block length 4294967295",
		},
		{name: "pcapng block length not aligned", file: corrupt(ng, 28+4, be, 41), wantErr: savefile.ErrCorrupt, wantMsg: "not a multiple of 4"},
		{name: "pcapng block length too small", file: corrupt(ng, 28+4, be, 8), wantErr: savefile.ErrCorrupt, wantMsg: "less than 12"},
		{name: "pcapng section header too small", file: corrupt(ng, 4, be, 24), open: true, wantErr: savefile.ErrCorrupt, wantMsg: "less than 28"},
		{name: "pcapng trailer mismatch", file: corrupt(ng, 64, be, 44), wantErr: savefile.ErrCorrupt, wantMsg: "offset 28: trailing block length 44 does not match 40"},
		{name: "pcapng bad byte-order magic", file: corrupt(ng, 8, be, 0x4d3c2b1b), open: true, wantErr: savefile.ErrCorrupt, wantMsg: "byte-order magic"},
		{name: "pcapng version 2", file: corrupt(ng, 12, be, 0x00020000), open: true, wantErr: errors.ErrUnsupported, wantMsg: "pcapng version 2.0"},
		{name: "pcapng undefined interface", file: corrupt(ng, 68+8, be, 1), wantErr: savefile.ErrCorrupt, wantMsg: "offset 68: interface 1 is not defined"},
		{name: "pcapng captured length beyond block", file: corrupt(ng, 68+20, be, 53), wantErr: savefile.ErrCorrupt, wantMsg: "captured length 53 exceeds the block"},
		{name: "pcapng captured length 4 GiB", file: corrupt(ng, 68+20, be, 0xfffffffd), wantErr: savefile.ErrCorrupt, wantMsg: "captured length 4294967293"},
		{name: "pcapng option overruns block", file: corrupt(ng, 68+28+40, be, 0x00010040), wantErr: savefile.ErrCorrupt, wantMsg: "option 1 of length 64 overruns"},
		{name: "pcapng bad if_tsresol", file: corrupt(ng, 56, be, 0x7f000000), wantErr: savefile.ErrCorrupt, wantMsg: "if_tsresol 0x7f"},
		{name: "pcapng truncated block", file: ng[:len(ng)-3], wantErr: io.ErrUnexpectedEOF, wantMsg: "offset 68"},
		{
			name: "pcapng simple packet without interface",
			file: func() []byte {
				var f ngFile
				return f.shb(le).spb(40, ipv4RST).b
			}(),
			wantErr: savefile.ErrCorrupt,
			wantMsg: "interface 0 is not defined (section has 0)",
		},
		{
			name: "pcapng block length 4 GiB in skipped block",
			file: func() []byte {
				var f ngFile
				b := f.shb(le).block(0x1234, []byte("abcd")).b
				return corrupt(b, 28+4, le, 0xfffffff0)
			}(),
			wantErr: savefile.ErrCorrupt,
			wantMsg: "offset 28: block length 4294967280 exceeds",
		},
		{
			name: "pcapng truncated skipped block",
			file: func() []byte {
				var f ngFile
				b := f.shb(le).block(0x1234, make([]byte, 100)).b
				return b[:len(b)-10]
			}(),
			wantErr: io.ErrUnexpectedEOF,
			wantMsg: "truncated block of type 0x00001234",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := savefile.NewReader(bytes.NewReader(tt.file))
			if tt.open {
				if err == nil {
					t.Fatal("NewReader succeeded, want an error")
				}
			} else {
				if err != nil {
					t.Fatalf("failed to open file: %v", err)
				}
				for err == nil {
					_, err = r.Next()
				}
				// Errors are sticky.
				if _, err2 := r.Next(); err2 != err {
					t.Errorf("got second Next() error %v, want = %v", err2, err)
				}
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %q, want one wrapping %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

// fixtures returns every valid hand-built file.
func fixtures() map[string][]byte {
	return map[string][]byte{
		"pcap-le-micro":   pcapLEMicro,
		"pcap-be-nano":    pcapBENano,
		"pcapng-le":       pcapngLE(),
		"pcapng-sections": pcapngSections(),
		"pcapng-be":       pcapngBigEndian(),
	}
}

// TestReaderTruncated cuts every fixture at every byte offset: the reader
// must return the packets before the cut and then io.EOF (cut at a block
// boundary) or io.ErrUnexpectedEOF, never panic or report corruption.
func TestReaderTruncated(t *testing.T) {
	for name, file := range fixtures() {
		t.Run(name, func(t *testing.T) {
			full := readAll(file)
			checkReadErr(t, full.err)
			for n := range len(file) {
				res := readAll(file[:n])
				switch {
				case errors.Is(res.err, io.EOF):
				case errors.Is(res.err, io.ErrUnexpectedEOF):
					if n > 0 && !strings.Contains(res.err.Error(), "offset") && !strings.Contains(res.err.Error(), "header") && !strings.Contains(res.err.Error(), "magic") {
						t.Errorf("cut at %d: error %q does not say where", n, res.err)
					}
				default:
					t.Fatalf("cut at %d: got error %v, want io.EOF or io.ErrUnexpectedEOF", n, res.err)
				}
				if len(res.packets) > len(full.packets) {
					t.Fatalf("cut at %d: got %d packets, the whole file has %d", n, len(res.packets), len(full.packets))
				}
				if d := diffPackets(full.packets[:len(res.packets)], res.packets); d != "" {
					t.Fatalf("cut at %d: unexpected packets (-want +got):\n%s", n, d)
				}
			}
		})
	}
}

// TestReaderHugeLengthNoAllocation checks that a length field near the cap,
// in a file that ends soon after, does not allocate that much.
func TestReaderHugeLengthNoAllocation(t *testing.T) {
	var f ngFile
	f.shb(le).idb(savefile.LinkTypeRaw, 0)
	f.b = le.AppendUint32(f.b, 6)
	f.b = le.AppendUint32(f.b, savefile.MaxBlockSize-4)
	f.b = append(f.b, make([]byte, 100)...)
	pcap := newPcap(le, false, savefile.LinkTypeRaw, 0).b
	pcap = le.AppendUint32(pcap, 0)
	pcap = le.AppendUint32(pcap, 0)
	pcap = le.AppendUint32(pcap, savefile.MaxBlockSize)
	pcap = le.AppendUint32(pcap, savefile.MaxBlockSize)
	pcap = append(pcap, make([]byte, 100)...)

	for name, file := range map[string][]byte{"pcapng": f.b, "pcap": pcap} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			res := readAll(file)
			runtime.ReadMemStats(&after)
			if !errors.Is(res.err, io.ErrUnexpectedEOF) {
				t.Errorf("got error %v, want io.ErrUnexpectedEOF", res.err)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
				t.Errorf("reading a %d-byte file allocated %d bytes", len(file), d)
			}
		})
	}
}

func TestReaderTimestamps(t *testing.T) {
	tests := []struct {
		name    string
		tsresol []byte // nil: default, microseconds
		tsoff   int64
		ts      uint64
		want    time.Time
	}{
		{name: "default microseconds", ts: 1_500_000, want: time.Unix(1, 500_000_000)},
		{name: "seconds", tsresol: []byte{0}, ts: 42, want: time.Unix(42, 0)},
		{name: "nanoseconds", tsresol: []byte{9}, ts: 1_000_000_007, want: time.Unix(1, 7)},
		{name: "picoseconds truncate", tsresol: []byte{12}, ts: 2_000_000_001_999, want: time.Unix(2, 1)},
		{name: "10^-19", tsresol: []byte{19}, ts: 18_000_000_000_000_000_000, want: time.Unix(1, 800_000_000)},
		{name: "2^0", tsresol: []byte{0x80}, ts: 9, want: time.Unix(9, 0)},
		{name: "2^-1", tsresol: []byte{0x81}, ts: 3, want: time.Unix(1, 500_000_000)},
		{name: "2^-30", tsresol: []byte{0x80 | 30}, ts: 5<<30 | 1<<29, want: time.Unix(5, 500_000_000)},
		{name: "2^-63", tsresol: []byte{0x80 | 63}, ts: 1<<63 | 1<<62, want: time.Unix(1, 500_000_000)},
		{name: "offset", tsresol: []byte{9}, tsoff: -10, ts: 1_700_000_000_000_000_000, want: time.Unix(1_699_999_990, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f ngFile
			f.shb(le)
			var opts [][]byte
			if tt.tsresol != nil {
				opts = append(opts, f.opt(9, tt.tsresol))
			}
			if tt.tsoff != 0 {
				opts = append(opts, f.opt(14, f.u64(uint64(tt.tsoff))))
			}
			f.idb(savefile.LinkTypeRaw, 0, opts...)
			f.epb(0, tt.ts, ipv4RST, 40)
			res := readAll(f.b)
			checkReadErr(t, res.err)
			if len(res.packets) != 1 {
				t.Fatalf("got %d packets, want = 1", len(res.packets))
			}
			if got := res.packets[0].Time; !got.Equal(tt.want) {
				t.Errorf("got Time = %s, want = %s", got.UTC(), tt.want.UTC())
			}
		})
	}
}

// manyInterfaces returns a pcapng section defining n interfaces, the first
// with a 1000-byte name (a 1028-byte IDB), the others in 20 bytes each, then
// a packet on the last interface.
func manyInterfaces(n int) []byte {
	var f ngFile
	f.shb(le) // 28 bytes
	f.b = slices.Grow(f.b, n*20+1100)
	f.idb(savefile.LinkTypeRaw, 0, f.opt(2, bytes.Repeat([]byte("n"), 1000)))
	for range n - 1 {
		f.idb(savefile.LinkTypeRaw, 0)
	}
	f.epb(uint32(n-1), 1700000000_000000, ipv4RST, 40)
	return f.b
}

// TestReaderInterfaceCap checks that a section may define MaxInterfaces
// interfaces but not one more, that the error names the offset of the
// refused block, and that names are cut, so the interface table (and the
// Reader's memory) stays bounded whatever the file holds.
func TestReaderInterfaceCap(t *testing.T) {
	res := readAll(manyInterfaces(savefile.MaxInterfaces))
	checkReadErr(t, res.err)
	if len(res.packets) != 1 || res.packets[0].Interface != savefile.MaxInterfaces-1 {
		t.Fatalf("got %d packets (%v), want 1 on interface %d", len(res.packets), res.packets, savefile.MaxInterfaces-1)
	}

	file := manyInterfaces(savefile.MaxInterfaces + 1)
	r, err := savefile.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = r.Next()
	runtime.GC()
	runtime.ReadMemStats(&after)
	// The refused IDB is the last one.
	off := 28 + 1028 + 20*(savefile.MaxInterfaces-1)
	if !errors.Is(err, savefile.ErrLimit) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d:", off)) {
		t.Fatalf("got error %v, want one wrapping ErrLimit at offset %d", err, off)
	}
	if r.NumInterfaces() != savefile.MaxInterfaces {
		t.Errorf("got %d interfaces, want %d", r.NumInterfaces(), savefile.MaxInterfaces)
	}
	if ifc, _ := r.Interface(0); len(ifc.Name) != savefile.MaxInterfaceName {
		t.Errorf("kept a %d-byte name, want it cut to %d", len(ifc.Name), savefile.MaxInterfaceName)
	}
	// 48 bytes per interface, the buffers, and a slack for the runtime.
	if d := int64(after.HeapAlloc) - int64(before.HeapAlloc); d > 8<<20 {
		t.Errorf("the Reader holds %d bytes after %d interfaces", d, savefile.MaxInterfaces)
	}
	runtime.KeepAlive(r)
}
