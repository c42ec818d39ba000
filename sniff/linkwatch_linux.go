package sniff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/proc/netns"
)

// The capture is one AF_PACKET socket bound to every interface, narrowed to
// the named ones by their ifindex in the BPF filter (Open). Such a socket
// never learns that an interface went away, and a re-created interface of
// the same name has a new ifindex that the filter does not accept. So a
// capture of named interfaces also listens to the kernel's link
// notifications (rtnetlink, RTMGRP_LINK) in the captured namespace, and
// rewrites the filter, or ends the capture, as interfaces go and come.

// linkEvent is one RTM_NEWLINK or RTM_DELLINK notification.
type linkEvent struct {
	index   int
	name    string
	deleted bool
}

// parseLinkEvents returns the link notifications in one rtnetlink
// datagram; other messages are skipped. (syscall.ParseNetlinkRouteAttr
// panics on some malformed attributes, which FuzzParseLinkEvents found.)
func parseLinkEvents(b []byte) ([]linkEvent, error) {
	ne := binary.NativeEndian
	var out []linkEvent
	for len(b) > 0 {
		if len(b) < unix.NLMSG_HDRLEN {
			return nil, errors.New("rtnetlink: truncated message header")
		}
		l, typ := int(ne.Uint32(b)), ne.Uint16(b[4:])
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return nil, fmt.Errorf("rtnetlink: message length %d of %d bytes", l, len(b))
		}
		data := b[unix.NLMSG_HDRLEN:l]
		b = b[min(nlAlign(l), len(b)):]
		if typ != unix.RTM_NEWLINK && typ != unix.RTM_DELLINK || len(data) < unix.SizeofIfInfomsg {
			continue
		}
		// struct ifinfomsg: family, pad, type (u16), index (s32), ...
		ev := linkEvent{index: int(int32(ne.Uint32(data[4:8]))), deleted: typ == unix.RTM_DELLINK}
		for attrs := data[unix.SizeofIfInfomsg:]; len(attrs) > 0; {
			if len(attrs) < unix.SizeofRtAttr {
				return nil, errors.New("rtnetlink: truncated attribute")
			}
			al, at := int(ne.Uint16(attrs)), ne.Uint16(attrs[2:])
			if al < unix.SizeofRtAttr || al > len(attrs) {
				return nil, fmt.Errorf("rtnetlink: attribute length %d of %d bytes", al, len(attrs))
			}
			if at == unix.IFLA_IFNAME {
				name, _, _ := bytes.Cut(attrs[unix.SizeofRtAttr:al], []byte{0})
				ev.name = string(name)
			}
			attrs = attrs[min(nlAlign(al), len(attrs)):]
		}
		if ev.index > 0 && ev.name != "" {
			out = append(out, ev)
		}
	}
	return out, nil
}

// nlAlign rounds a netlink length up to 4 bytes (NLMSG_ALIGN, RTA_ALIGN).
func nlAlign(n int) int { return (n + 3) &^ 3 }

// wantIf is a named interface and its current index, 0 while it is absent.
type wantIf struct {
	name  string
	index int
}

// linkWatch follows the named interfaces of a capture.
type linkWatch struct {
	s      *Sniffer
	f      *os.File // NETLINK_ROUTE socket joined to RTMGRP_LINK
	opts   filter.Options
	notify func(string)
	done   chan struct{}

	mu    sync.Mutex
	want  []wantIf
	names map[int]string // index -> name, from notifications (IfName)
}

// openLinkSocket opens a non-blocking rtnetlink socket for link
// notifications in the calling thread's network namespace. It is opened
// before the interfaces are listed, so no change after the listing is
// missed.
func openLinkSocket() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, os.NewSyscallError("socket NETLINK_ROUTE", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind RTMGRP_LINK", err)
	}
	// A non-blocking descriptor is pollable, so Close wakes a Read.
	return os.NewFile(uintptr(fd), "rtnetlink"), nil
}

// startLinkWatch follows ifaces (the named interfaces, as found by Open)
// through f; opts is the filter they were captured with.
func (s *Sniffer) startLinkWatch(f *os.File, ifaces []Interface, opts filter.Options, notify func(string)) {
	w := &linkWatch{s: s, f: f, opts: opts, notify: notify, done: make(chan struct{}), names: map[int]string{}}
	for _, ifi := range ifaces {
		w.want = append(w.want, wantIf{name: ifi.Name, index: ifi.Index})
	}
	if w.notify == nil {
		w.notify = func(string) {}
	}
	s.watch = w
	go w.run()
}

func (w *linkWatch) run() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		switch {
		case errors.Is(err, os.ErrClosed):
			return
		case errors.Is(err, unix.ENOBUFS):
			// Notifications were lost: compare with the interfaces now.
			w.resync()
			continue
		case err != nil:
			w.notify(fmt.Sprintf("no longer following interface changes: %v", err))
			return
		}
		evs, err := parseLinkEvents(buf[:n])
		if err != nil {
			w.notify(fmt.Sprintf("ignoring a link notification: %v", err))
			continue
		}
		for _, ev := range evs {
			w.apply(ev)
		}
	}
}

// resync applies the interfaces of the namespace as they are now.
func (w *linkWatch) resync() {
	var all []net.Interface
	err := netns.Do(w.s.netns, func() (err error) {
		all, err = net.Interfaces()
		return err
	})
	if err != nil {
		w.notify(fmt.Sprintf("cannot list interfaces: %v", err))
		return
	}
	w.mu.Lock()
	want := append([]wantIf(nil), w.want...)
	w.mu.Unlock()
	for _, wi := range want {
		found := false
		for _, ifi := range all {
			if ifi.Name == wi.name {
				w.apply(linkEvent{index: ifi.Index, name: ifi.Name})
				found = true
			}
		}
		if !found && wi.index != 0 {
			w.apply(linkEvent{index: wi.index, name: wi.name, deleted: true})
		}
	}
}

// apply follows one notification: a named interface that went away (or
// was renamed) leaves the filter, one that came back joins it.
func (w *linkWatch) apply(ev linkEvent) {
	w.mu.Lock()
	var msgs []string
	changed := false
	if !ev.deleted {
		w.names[ev.index] = ev.name
	}
	for i := range w.want {
		wi := &w.want[i]
		switch {
		case wi.index != 0 && wi.index == ev.index && (ev.deleted || ev.name != wi.name):
			wi.index = 0
			changed = true
			msgs = append(msgs, fmt.Sprintf("interface %s went away; capturing on the others until it returns", wi.name))
		case !ev.deleted && ev.name == wi.name && wi.index != ev.index:
			wi.index = ev.index
			changed = true
			msgs = append(msgs, fmt.Sprintf("interface %s is back (index %d); capturing on it again", wi.name, ev.index))
		}
	}
	var present []int
	for _, wi := range w.want {
		if wi.index != 0 {
			present = append(present, wi.index)
		}
	}
	only := len(w.want) == 1
	name := w.want[0].name
	w.mu.Unlock()
	if !changed {
		return
	}
	if only && len(present) == 0 {
		w.s.gone.Store(&InterfaceGoneError{Name: name})
		// Wake a Next blocked on the socket; it then returns the error.
		_ = w.s.conn.SetReadDeadline(time.Unix(1, 0))
		return
	}
	// With every named interface gone the old filter stays: an empty
	// interface list would mean all of them.
	if len(present) > 0 {
		opts := w.opts
		opts.Interfaces = present
		prog, err := filter.Assemble(opts)
		if err == nil {
			err = w.s.conn.SetBPF(prog)
		}
		if err != nil {
			msgs = append(msgs, fmt.Sprintf("cannot update the capture filter: %v", err))
		}
	}
	for _, m := range msgs {
		w.notify(m)
	}
}

// name returns the name a notification gave index i.
func (w *linkWatch) name(i int) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	name, ok := w.names[i]
	return name, ok
}

// stop ends the watch and waits for its goroutine.
func (w *linkWatch) stop() {
	w.f.Close()
	<-w.done
}

// interfaceGone returns the error that ended the capture when its only
// interface went away, or nil.
func (s *Sniffer) interfaceGone() error {
	if e := s.gone.Load(); e != nil {
		return e
	}
	return nil
}
