//go:build !linux

package proc

import (
	"fmt"
	"net/netip"
	"runtime"
)

var errUnimplemented = fmt.Errorf("proc: sock_diag not implemented on %s", runtime.GOOS)

type diagConn struct{}

func dialDiag() (*Diag, error) { return nil, errUnimplemented }

func (d *Diag) close() error { _ = d.c; return errUnimplemented }

func (d *Diag) dump(_ uint8, _ StateMask, _ func([]Socket)) (bool, error) {
	return false, errUnimplemented
}

func (d *Diag) lookup(_, _ netip.AddrPort) (Socket, bool, error) {
	return Socket{}, false, errUnimplemented
}
