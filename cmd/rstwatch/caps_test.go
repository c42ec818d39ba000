package main

import (
	"slices"
	"testing"

	"github.com/rstwatch/rstwatch/proc"
)

func TestCapSetString(t *testing.T) {
	tests := []struct {
		name string
		set  capSet
		want string
	}{
		{"none", 0, "none"},
		{"net_raw", capsOf(capNetRaw), "CAP_NET_RAW"},
		{"bit_order", capsOf(capSysPtrace, capNetRaw, capDACReadSearch), "CAP_DAC_READ_SEARCH,CAP_NET_RAW,CAP_SYS_PTRACE"},
		{"unnamed", capsOf(capNetRaw, 0, 40), "CAP_NET_RAW+2"},
		{"root", 1<<41 - 1, "CAP_DAC_READ_SEARCH,CAP_NET_ADMIN,CAP_NET_RAW,CAP_SYS_PTRACE,CAP_SYS_ADMIN+36"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.set.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
	if got := capability(63).String(); got != "cap_63" {
		t.Errorf("capability(63) = %q", got)
	}
}

func TestOwnersNote(t *testing.T) {
	tests := []struct {
		name       string
		unreadable int
		have       capSet
		want       string
	}{
		{"all_read", 0, 0, ""},
		{"nothing", 12, capsOf(capNetRaw), "process names unavailable for 12 processes: need CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH"},
		{"one", 1, capsOf(capDACReadSearch), "process names unavailable for 1 process: need CAP_SYS_PTRACE"},
		{"no_dac", 3, capsOf(capSysPtrace), "process names unavailable for 3 processes: need CAP_DAC_READ_SEARCH"},
		{"nothing_to_grant", 2, capsOf(capSysPtrace, capDACReadSearch), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ownersNote(proc.OwnersStats{Processes: 40, Unreadable: tt.unreadable}, tt.have); got != tt.want {
				t.Errorf("ownersNote = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRuntimeCapabilities(t *testing.T) {
	if got, want := capsOf(runtimeCapabilities(false)...), capsOf(capSysPtrace, capDACReadSearch); got != want {
		t.Errorf("runtimeCapabilities(false) = %v, want %v", got, want)
	}
	later := runtimeCapabilities(true)
	for _, c := range []capability{capSysPtrace, capDACReadSearch, capSysAdmin, capNetRaw} {
		if !slices.Contains(later, c) {
			t.Errorf("runtimeCapabilities(true) = %v lacks %v", later, c)
		}
	}
	if slices.Contains(later, capNetAdmin) {
		t.Errorf("runtimeCapabilities(true) keeps CAP_NET_ADMIN, needed only at open")
	}
	// The slice is the caller's: appending to it must not change the next.
	_ = append(runtimeCapabilities(false), capNetAdmin)
	if slices.Contains(runtimeCapabilities(false), capNetAdmin) {
		t.Errorf("runtimeCapabilities shares its backing array")
	}
}
