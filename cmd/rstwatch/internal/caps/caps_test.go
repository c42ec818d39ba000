package caps

import (
	"slices"
	"testing"

	"github.com/rstwatch/rstwatch/proc"
)

func TestCapSetString(t *testing.T) {
	tests := []struct {
		name string
		set  Set
		want string
	}{
		{"none", 0, "none"},
		{"net_raw", Of(NetRaw), "CAP_NET_RAW"},
		{"bit_order", Of(SysPtrace, NetRaw, DACReadSearch), "CAP_DAC_READ_SEARCH,CAP_NET_RAW,CAP_SYS_PTRACE"},
		{"unnamed", Of(NetRaw, 0, 40), "CAP_NET_RAW+2"},
		{"root", 1<<41 - 1, "CAP_DAC_READ_SEARCH,CAP_NET_ADMIN,CAP_NET_RAW,CAP_SYS_PTRACE,CAP_SYS_ADMIN+36"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.set.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
	if got := Capability(63).String(); got != "cap_63" {
		t.Errorf("Capability(63) = %q", got)
	}
}

func TestOwnersNote(t *testing.T) {
	tests := []struct {
		name       string
		unreadable int
		have       Set
		want       string
	}{
		{"all_read", 0, 0, ""},
		{"nothing", 12, Of(NetRaw), "process names unavailable for 12 processes: need CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH"},
		{"one", 1, Of(DACReadSearch), "process names unavailable for 1 process: need CAP_SYS_PTRACE"},
		{"no_dac", 3, Of(SysPtrace), "process names unavailable for 3 processes: need CAP_DAC_READ_SEARCH"},
		{"nothing_to_grant", 2, Of(SysPtrace, DACReadSearch), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OwnersNote(proc.OwnersStats{Processes: 40, Unreadable: tt.unreadable}, tt.have); got != tt.want {
				t.Errorf("OwnersNote = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRuntimeCapabilities(t *testing.T) {
	if got, want := Of(Runtime(false)...), Of(SysPtrace, DACReadSearch); got != want {
		t.Errorf("Runtime(false) = %v, want %v", got, want)
	}
	later := Runtime(true)
	for _, c := range []Capability{SysPtrace, DACReadSearch, SysAdmin, NetRaw} {
		if !slices.Contains(later, c) {
			t.Errorf("Runtime(true) = %v lacks %v", later, c)
		}
	}
	if slices.Contains(later, NetAdmin) {
		t.Errorf("Runtime(true) keeps CAP_NET_ADMIN, needed only at open")
	}
	// The slice is the caller's: appending to it must not change the next.
	_ = append(Runtime(false), NetAdmin)
	if slices.Contains(Runtime(false), NetAdmin) {
		t.Errorf("Runtime shares its backing array")
	}
}
