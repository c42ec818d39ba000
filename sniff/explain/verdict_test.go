package explain_test

import (
	"testing"

	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

func TestWireCause(t *testing.T) {
	for _, tt := range []struct {
		name string
		seg  sniff.Segment
		want explain.Cause
	}{
		// KERNEL-NOTES fact 11: tcp_v4_send_reset answering a SYN.
		{"stateless_answer_to_syn", sniff.Segment{Flags: sniff.FlagRST | sniff.FlagACK, Seq: 0, Ack: 1001}, explain.Refused},
		// ... answering a segment that carried ACK: seq = its ack, no ACK.
		{"stateless_answer_to_ack", sniff.Segment{Flags: sniff.FlagRST, Seq: 5000}, explain.Stale},
		// Fact 10: tcp_send_active_reset carries the socket's window.
		{"socket_abort", sniff.Segment{Flags: sniff.FlagRST | sniff.FlagACK, Seq: 77, Ack: 88, Window: 512}, explain.Abort},
		{"socket_abort_bare", sniff.Segment{Flags: sniff.FlagRST, Seq: 77, Window: 64}, explain.Abort},
		{"fin_rst_ack_with_window", sniff.Segment{Flags: sniff.FlagFIN | sniff.FlagRST | sniff.FlagACK, Seq: 9, Window: 100}, explain.Abort},
		{"rst_ack_zero_window_nonzero_seq", sniff.Segment{Flags: sniff.FlagRST | sniff.FlagACK, Seq: 9}, explain.Unknown},
		{"not_a_reset", sniff.Segment{Flags: sniff.FlagSYN}, explain.Unknown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := explain.WireCause(&tt.seg); got != tt.want {
				t.Fatalf("WireCause = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCauseStrings(t *testing.T) {
	want := map[explain.Cause]string{explain.Refused: "refused", explain.Rejected: "rejected", explain.Overflow: "overflow",
		explain.Abort: "abort", explain.Stale: "stale", explain.Unknown: "unknown", 0: "unknown"}
	for c, s := range want {
		if c.String() != s {
			t.Errorf("Cause(%d).String() = %q, want %q", c, c.String(), s)
		}
	}
}

func TestFileCause(t *testing.T) {
	refusedShape := sniff.Segment{Flags: sniff.FlagRST | sniff.FlagACK, Seq: 0, Ack: 1001}
	zeroWindow := sniff.Segment{Flags: sniff.FlagRST | sniff.FlagACK, Seq: 77, Ack: 88}
	bare := sniff.Segment{Flags: sniff.FlagRST, Seq: 5000}
	abort := sniff.Segment{Flags: sniff.FlagRST | sniff.FlagACK, Seq: 77, Window: 512}
	for _, tt := range []struct {
		name     string
		seg      sniff.Segment
		accepted bool
		want     explain.Cause
	}{
		{"refused_no_handshake", refusedShape, false, explain.Refused},
		{"refused_shape_after_syn_ack", refusedShape, true, explain.Abort},
		{"zero_window_after_syn_ack", zeroWindow, true, explain.Abort},
		{"zero_window_without_handshake", zeroWindow, false, explain.Unknown},
		{"bare_after_syn_ack", bare, true, explain.Stale},
		{"abort_stays", abort, true, explain.Abort},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := explain.FileCause(&tt.seg, tt.accepted); got != tt.want {
				t.Fatalf("FileCause = %v, want %v", got, tt.want)
			}
		})
	}
}
