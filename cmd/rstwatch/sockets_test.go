package main

import (
	"net/netip"
	"testing"

	"github.com/rstwatch/rstwatch/proc"
)

func TestPortMatches(t *testing.T) {
	s := proc.Socket{Local: netip.MustParseAddrPort("127.0.0.1:7300"), Remote: netip.MustParseAddrPort("127.0.0.1:41000")}
	for _, tt := range []struct {
		ports []uint16
		want  bool
	}{
		{nil, true},
		{[]uint16{7300}, true},
		{[]uint16{41000}, true},
		{[]uint16{80, 443}, false},
		{[]uint16{80, 41000}, true},
	} {
		if got := portMatches(s, tt.ports); got != tt.want {
			t.Errorf("portMatches(%v) = %t, want %t", tt.ports, got, tt.want)
		}
	}
}
