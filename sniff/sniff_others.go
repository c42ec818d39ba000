//go:build !linux

package sniff

import (
	"fmt"
	"runtime"
	"time"
)

// Sniffer is a capture of TCP resets; it is only implemented on Linux.
type Sniffer struct {
	batch       []Packet
	pos         int
	dedup       Dedup
	undecodable uint64
	duplicates  uint64
	ifaces      []Interface
}

// Open starts a capture; it is only implemented on Linux.
func Open(*Config) (*Sniffer, error) { return nil, errUnimplemented }

func (s *Sniffer) read() ([]Packet, error) { return nil, errUnimplemented }

func (s *Sniffer) interfaceGone() error { return nil }

// SetReadDeadline is only implemented on Linux.
func (s *Sniffer) SetReadDeadline(time.Time) error { return errUnimplemented }

// Stats is only implemented on Linux.
func (s *Sniffer) Stats() (Stats, error) { return Stats{}, errUnimplemented }

// IfName is only implemented on Linux.
func (s *Sniffer) IfName(int) string { return "" }

func (s *Sniffer) ifName(int) string { return "" }

// Close is only implemented on Linux.
func (s *Sniffer) Close() error { return errUnimplemented }

var errUnimplemented = fmt.Errorf("sniff: capture not implemented on %s", runtime.GOOS)
