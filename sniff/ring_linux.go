package sniff

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TPACKET_V3 ring geometry. The kernel fills one block at a time and hands
// it over when it is full or ringRetire has passed since its first packet,
// so a storm costs one wakeup per block instead of one recvmmsg(2) per
// batch, and a quiet capture still shows a reset within ringRetire.
const (
	ringBlock  = 512 << 10
	ringFrame  = 2048 // only checked by the kernel: V3 packs packets tightly
	ringRetire = 10   // ms
	// A block holds at most this many packets: each takes a tpacket3_hdr,
	// a sockaddr_ll and at least a 20-byte IP header, aligned to 16.
	ringMaxPkts = ringBlock / (tpacket3HdrLen + 16 + 32)
	// tpacket3HdrLen is TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): the
	// sockaddr_ll follows the header there (packet(7), packet_mmap.rst).
	tpacket3HdrLen = (unix.SizeofTpacket3Hdr + 15) &^ 15
)

// ring is a mapped PACKET_RX_RING.
type ring struct {
	mem   []byte
	nr    int // blocks
	cur   int // the block the next packets come from
	ready func(fd uintptr) bool
}

// setupRing switches the socket to a TPACKET_V3 receive ring of about size
// bytes and maps it. It must be called before the first read.
func (s *Sniffer) setupRing(size int) error {
	nr := max(size/ringBlock, 2)
	req := unix.TpacketReq3{
		Block_size:     ringBlock,
		Block_nr:       uint32(nr),
		Frame_size:     ringFrame,
		Frame_nr:       uint32(nr * (ringBlock / ringFrame)),
		Retire_blk_tov: ringRetire,
	}
	var (
		mem  []byte
		serr error
	)
	err := s.rc.Control(func(fd uintptr) {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
			serr = os.NewSyscallError("setsockopt PACKET_VERSION", err)
			return
		}
		if err := unix.SetsockoptTpacketReq3(int(fd), unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
			serr = os.NewSyscallError("setsockopt PACKET_RX_RING", err)
			return
		}
		mem, serr = unix.Mmap(int(fd), 0, nr*ringBlock, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if serr != nil {
			serr = os.NewSyscallError("mmap", serr)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	s.ring = &ring{mem: mem, nr: nr}
	// Built once, so that reading does not allocate.
	s.ring.ready = func(uintptr) bool { return s.ring.userOwns(s.ring.cur) }
	if cap(s.packets) < ringMaxPkts {
		s.packets = make([]Packet, ringMaxPkts)
	}
	s.ringCopy = make([]byte, ringBlock)
	return nil
}

// block returns the descriptor of block i.
func (r *ring) block(i int) *unix.TpacketBlockDesc {
	return (*unix.TpacketBlockDesc)(unsafe.Pointer(&r.mem[i*ringBlock]))
}

// status is the block descriptor's block_status word (struct
// tpacket_hdr_v1, the first field after version and offset_to_priv).
func (r *ring) status(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.block(i).Hdr[0]))
}

// userOwns reports whether the kernel has handed block i to user space.
func (r *ring) userOwns(i int) bool {
	return atomic.LoadUint32(r.status(i))&unix.TP_STATUS_USER != 0
}

// holdRing keeps Close from unmapping the ring until releaseRing; it fails
// once the ring is gone. Without the ring it does nothing.
func (s *Sniffer) holdRing() error {
	if !s.useRing {
		return nil
	}
	s.ringMu.Lock()
	if s.ring == nil {
		s.ringMu.Unlock()
		return errRead(net.ErrClosed)
	}
	return nil
}

// releaseRing ends holdRing.
func (s *Sniffer) releaseRing() {
	if s.useRing {
		s.ringMu.Unlock()
	}
}

// readRing returns the packets of the next filled block. It parks on the
// runtime poller until the kernel retires a block (POLLIN), the deadline
// passes or the Sniffer is closed. The packets are copied out of the block
// in one pass and the block goes back to the kernel at once: the events
// outlive this call (until the next), a Close from another goroutine may
// unmap the ring any time after it, and a block given back early is room
// for the storm. The caller holds the ring (holdRing).
func (s *Sniffer) readRing() ([]Packet, error) {
	r := s.ring
	if !r.userOwns(r.cur) {
		if err := s.rc.Read(r.ready); err != nil {
			return nil, s.readErr(err)
		}
	}
	defer func() {
		atomic.StoreUint32(r.status(r.cur), unix.TP_STATUS_KERNEL)
		r.cur = (r.cur + 1) % r.nr
	}()
	base := r.cur * ringBlock
	h := (*unix.TpacketHdrV1)(unsafe.Pointer(&r.block(r.cur).Hdr[0]))
	n := min(int(h.Num_pkts), len(s.packets))
	off := base + int(h.Offset_to_first_pkt)
	end := base + ringBlock
	got, copied := 0, 0
	for range n {
		if off+tpacket3HdrLen+unix.SizeofSockaddrLinklayer > end {
			break
		}
		th := (*unix.Tpacket3Hdr)(unsafe.Pointer(&r.mem[off]))
		a := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&r.mem[off+tpacket3HdrLen]))
		start := off + int(th.Net)
		stop := start + int(th.Snaplen)
		if start > end || stop > end {
			break
		}
		p := &s.packets[got]
		got++
		n := copy(s.ringCopy[copied:], r.mem[start:stop])
		p.Data = s.ringCopy[copied : copied+n : copied+n]
		copied += n
		p.Len = int(th.Len)
		p.Time = time.Unix(int64(th.Sec), int64(th.Nsec))
		p.Ifindex = int(a.Ifindex)
		p.PktType = a.Pkttype
		p.HAType = a.Hatype
		// sll_protocol is stored in network byte order (packet(7)).
		p.Proto = binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&a.Protocol))[:])
		p.VLAN, p.VLANTCI, p.VLANTPID = vlanTag(th.Status, uint16(th.Hv1.Vlan_tci), th.Hv1.Vlan_tpid)
		if th.Next_offset == 0 {
			break
		}
		off += int(th.Next_offset)
	}
	return s.packets[:got], nil
}

// closeRing unmaps the ring once no Next holds it. The socket must be
// closed first, which wakes a Next parked on the poller.
func (s *Sniffer) closeRing() error {
	s.ringMu.Lock()
	defer s.ringMu.Unlock()
	if s.ring == nil {
		return nil
	}
	err := unix.Munmap(s.ring.mem)
	s.ring = nil
	if err != nil {
		return fmt.Errorf("munmap ring: %w", err)
	}
	return nil
}
