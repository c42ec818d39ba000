//go:build linux

package proc

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// diagRecvBuf is the receive buffer size. The kernel sizes dump skbs by the
// largest buffer user space has offered (up to 32 KiB and more with high
// order pages), so offer 64 KiB and check MSG_TRUNC anyway.
const diagRecvBuf = 64 << 10

// diagTimeout bounds each recvfrom(2) so a lost reply cannot hang a caller.
const diagTimeout = 5 * time.Second

// diagConn is the Linux state of a Diag.
type diagConn struct {
	fd    int
	seq   uint32
	buf   []byte   // receive buffer
	req   []byte   // request buffer
	batch []Socket // the sockets of one datagram of a dump
}

func dialDiag() (*Diag, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	tv := unix.NsecToTimeval(diagTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setsockopt", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	// Connected to the kernel (port 0), requests go out with write(2) and
	// replies come in without a source address: the lookup on the capture
	// path then allocates nothing (sendto(2) with an address does).
	if err := unix.Connect(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("connect", err)
	}
	return &Diag{c: diagConn{fd: fd, buf: make([]byte, diagRecvBuf)}}, nil
}

func (d *Diag) close() error { return os.NewSyscallError("close", unix.Close(d.c.fd)) }

// send sends r with a fresh sequence number.
func (d *Diag) send(r *diagRequest) error {
	d.c.seq++
	if d.c.seq == 0 {
		d.c.seq = 1
	}
	r.seq = d.c.seq
	d.c.req = r.marshal(d.c.req[:0])
	for {
		// A raw syscall: the kernel answers within write(2) and queues the
		// reply without waiting (sock_diag replies with MSG_DONTWAIT), so
		// it never blocks, and the scheduler need not hear of it. A
		// syscall announced to the Go runtime wakes its monitor thread
		// from deep sleep, which then polls every 20 µs for a millisecond:
		// once per lookup, that was a tenth of the capture's CPU in a
		// storm.
		_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(d.c.fd), uintptr(unsafe.Pointer(&d.c.req[0])), uintptr(len(d.c.req)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return os.NewSyscallError("write", e)
		}
		return nil
	}
}

// recv reads one datagram of netlink messages into d.c.buf.
func (d *Diag) recv() ([]byte, error) {
	for {
		// recvfrom(2) without a source address; MSG_TRUNC makes it return
		// the datagram's full length, so truncation is detected. The
		// reply is almost always queued already (see send): try without
		// blocking, and as a raw syscall, first; wait (up to diagTimeout)
		// only when it is not.
		r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(d.c.fd), uintptr(unsafe.Pointer(&d.c.buf[0])),
			uintptr(len(d.c.buf)), unix.MSG_TRUNC|unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN {
			r, _, e = unix.Syscall6(unix.SYS_RECVFROM, uintptr(d.c.fd), uintptr(unsafe.Pointer(&d.c.buf[0])),
				uintptr(len(d.c.buf)), unix.MSG_TRUNC, 0, 0)
		}
		n := int(r)
		var err error
		if e != 0 {
			err = e
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return nil, fmt.Errorf("no reply within %v: %w", diagTimeout, os.ErrDeadlineExceeded)
		case err != nil:
			return nil, os.NewSyscallError("recvfrom", err)
		case n > len(d.c.buf):
			return nil, fmt.Errorf("netlink message of %d bytes truncated to %d", n, len(d.c.buf))
		}
		return d.c.buf[:n], nil
	}
}

// dump runs one NLM_F_DUMP request, reading multipart replies until
// NLMSG_DONE and handing fn the sockets of each, and reports whether any
// part carried NLM_F_DUMP_INTR.
func (d *Diag) dump(family uint8, states StateMask, fn func([]Socket)) (intr bool, err error) {
	r := diagRequest{dump: true, family: family, states: states}
	if err := d.send(&r); err != nil {
		return false, err
	}
	for {
		b, err := d.recv()
		if err != nil {
			return intr, err
		}
		var st diagStatus
		d.c.batch, st, err = decodeDiag(b, r.seq, d.c.batch[:0])
		if len(d.c.batch) > 0 {
			fn(d.c.batch)
		}
		intr = intr || st.intr
		if err != nil || st.done {
			return intr, err
		}
	}
}

// lookup runs one exact request. The kernel answers with a single
// SOCK_DIAG_BY_FAMILY message or NLMSG_ERROR (ENOENT when nothing matches).
func (d *Diag) lookup(local, remote netip.AddrPort) (Socket, bool, error) {
	family := uint8(afInet6)
	if local.Addr().Is4() {
		family = afInet
	}
	r := diagRequest{family: family, states: AllStates, local: local, remote: remote}
	if err := d.send(&r); err != nil {
		return Socket{}, false, err
	}
	var one [1]Socket
	for {
		b, err := d.recv()
		if err != nil {
			return Socket{}, false, err
		}
		got, st, err := decodeDiag(b, r.seq, one[:0])
		if errors.Is(err, unix.ENOENT) {
			return Socket{}, false, nil
		}
		if err != nil {
			return Socket{}, false, err
		}
		if len(got) > 0 {
			return got[0], true, nil
		}
		if st.done {
			return Socket{}, false, nil
		}
	}
}
