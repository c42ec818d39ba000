package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/rstwatch/rstwatch/proc/netns"
)

// maxBatch is how many packets one sendmmsg(2) carries when sending flat out.
const maxBatch = 64

// sender writes crafted packets to the tx end of the veth pair through an
// AF_PACKET SOCK_DGRAM socket: the kernel adds the Ethernet header from the
// sockaddr_ll, and the packets take the peer's receive path (and its packet
// taps) exactly as received traffic does.
type sender struct {
	conn  *packet.Conn
	rc    syscall.RawConn
	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec
	bufs  []byte
	addr4 unix.RawSockaddrLinklayer
	addr6 unix.RawSockaddrLinklayer

	n, off int // messages queued, first not yet sent
	err    syscall.Errno
	fn     func(fd uintptr) bool
}

const slot = 64 // bytes per packet buffer (an IPv6 TCP header is 60)

func newSender(p *pair) (*sender, error) {
	s := &sender{}
	err := netns.Do(p.tx.path(), func() error {
		// Protocol 0: the socket is bound to the interface but receives
		// nothing.
		c, err := packet.Listen(&net.Interface{Index: p.txIdx}, packet.Datagram, 0, nil)
		s.conn = c
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open packet socket: %w", err)
	}
	if s.rc, err = s.conn.SyscallConn(); err != nil {
		s.conn.Close()
		return nil, err
	}
	_ = s.rc.Control(func(fd uintptr) {
		// Skip the (noqueue) qdisc layer; a bigger send buffer lets a
		// batch go out in one call.
		_ = unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	})
	for _, a := range []struct {
		sa    *unix.RawSockaddrLinklayer
		proto uint16
	}{{&s.addr4, unix.ETH_P_IP}, {&s.addr6, unix.ETH_P_IPV6}} {
		a.sa.Family = unix.AF_PACKET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&a.sa.Protocol))[:], a.proto)
		a.sa.Ifindex = int32(p.txIdx)
		a.sa.Halen = uint8(len(p.rxMAC))
		copy(a.sa.Addr[:], p.rxMAC)
	}
	s.msgs = make([]unix.Mmsghdr, maxBatch)
	s.iovs = make([]unix.Iovec, maxBatch)
	s.bufs = make([]byte, maxBatch*slot)
	for i := range s.msgs {
		s.iovs[i].Base = &s.bufs[i*slot]
		s.msgs[i].Hdr.Iov = &s.iovs[i]
		s.msgs[i].Hdr.SetIovlen(1)
		s.msgs[i].Hdr.Namelen = unix.SizeofSockaddrLinklayer
	}
	s.fn = s.send
	return s, nil
}

func (s *sender) close() error { return s.conn.Close() }

// send runs sendmmsg(2) without blocking until the queued batch is out;
// returning false waits on the runtime poller for buffer space.
func (s *sender) send(fd uintptr) bool {
	for s.off < s.n {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.msgs[s.off])), uintptr(s.n-s.off), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			s.off += int(n)
		case unix.EINTR:
		case unix.EAGAIN, unix.ENOBUFS:
			return false
		default:
			s.err = e
			return true
		}
	}
	return true
}

// stormResult is what the generator sent.
type stormResult struct {
	Sent, V4, V6 uint64
	Elapsed      time.Duration
}

// storm sends count packets made by c (0: no limit), at rate packets a
// second (0: as fast as possible), for at most d, until ctx ends.
func (s *sender) storm(ctx context.Context, c *crafter, count uint64, rate int, d time.Duration) (stormResult, error) {
	batch := maxBatch
	if rate > 0 {
		// Small batches at low rates keep the storm smooth: a batch
		// every 250 µs or so.
		batch = min(max(rate/4000, 1), maxBatch)
	}
	var r stormResult
	start := time.Now()
	deadline := start.Add(d)
	for count == 0 || r.Sent < count {
		if ctx.Err() != nil {
			break
		}
		now := time.Now()
		if d > 0 && !now.Before(deadline) {
			break
		}
		k := batch
		if count > 0 {
			k = int(min(uint64(k), count-r.Sent))
		}
		for j := range k {
			n, v6 := c.packet(s.bufs[j*slot:(j+1)*slot], r.Sent+uint64(j))
			s.iovs[j].SetLen(n)
			h := &s.msgs[j].Hdr
			if v6 {
				h.Name = (*byte)(unsafe.Pointer(&s.addr6))
				r.V6++
			} else {
				h.Name = (*byte)(unsafe.Pointer(&s.addr4))
				r.V4++
			}
		}
		s.n, s.off = k, 0
		if err := s.rc.Write(s.fn); err != nil {
			return r, err
		}
		if s.err != 0 {
			return r, os.NewSyscallError("sendmmsg", s.err)
		}
		r.Sent += uint64(k)
		if rate > 0 {
			due := start.Add(time.Duration(r.Sent * uint64(time.Second) / uint64(rate)))
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait)
			}
		}
	}
	r.Elapsed = time.Since(start)
	return r, nil
}
