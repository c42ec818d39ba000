package sniff_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rstwatch/rstwatch/filter"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// diag returns an RST diagnostic payload (draft-ietf-tcpm-rst-diagnostic-payload).
func diag(code uint16, pen uint32) []byte {
	b := binary.BigEndian.AppendUint16(nil, 0x33aa)
	b = binary.BigEndian.AppendUint16(b, code)
	return binary.BigEndian.AppendUint32(b, pen)
}

func TestReason(t *testing.T) {
	const f5 = "BIG-IP: [0x11c5672:3045] {peer} TCP RST from remote system"
	for _, tt := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"none", nil, ""},
		{"diag_illegal_option_length", diag(1, 0), "code 1 (Illegal option length), pen 0"},
		{"diag_connection_timeout", diag(14, 0), "code 14 (Connection timeout), pen 0"},
		{"diag_last_initial_code", diag(17, 0), "code 17 (Middlebox interference), pen 0"},
		{"diag_unregistered_code", diag(18, 0), "code 18, pen 0"},
		{"diag_max_code", diag(65535, 0), "code 65535, pen 0"},
		// The draft's vendor example: code 1234 of PEN 32473 (RFC 5612).
		{"diag_vendor", diag(1234, 32473), "code 1234, pen 32473"},
		{"diag_vendor_low_code", diag(1, 32473), "code 1, pen 32473"},
		{"diag_max_pen", diag(2, 0xffffffff), "code 2, pen 4294967295"},
		{"diag_reserved_code", diag(0, 0), ""},
		{"diag_short", diag(1, 0)[:7], ""},
		{"diag_long", append(diag(1, 0), 0), ""},
		{"diag_wrong_magic", append([]byte{0x33, 0xab}, diag(1, 0)[2:]...), ""},
		// Linux's experiment: a reason byte followed by 999 zeros.
		{"linux_experiment", append([]byte{5}, make([]byte, 999)...), ""},
		{"f5", []byte(f5), f5},
		{"f5_nul_padded", append([]byte(f5), 0, 0, 0), f5},
		{"f5_after_prefix", []byte("xx " + f5), "xx " + f5},
		{"f5_too_far_in", []byte(strings.Repeat(" ", 16) + f5), ""},
		{"plain_text", []byte("connection reset by peer"), ""},
		{"nul_only", make([]byte, 8), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := sniff.Reason(tt.payload); got != tt.want {
				t.Errorf("got Reason(%x) = %q, want = %q", tt.payload, got, tt.want)
			}
		})
	}
}

func TestReasonAllocs(t *testing.T) {
	for _, p := range [][]byte{nil, make([]byte, 8), diag(0, 0), []byte("no reason here"), make([]byte, 1400)} {
		if n := testing.AllocsPerRun(100, func() { sniff.Reason(p) }); n != 0 {
			t.Errorf("Reason(%d bytes without a reason) allocated %v times, want 0", len(p), n)
		}
	}
}

// rstNote matches the reset line of tcpdump -v/-vv output and its note on
// the reset's payload (print-tcp.c: "[RST ...]", "[RST+ ...]" when it
// printed only the first 30 bytes, "[RST: ...]" for a diagnostic payload).
var rstNote = regexp.MustCompile(`Flags \[[^\]]*R[^\]]*\].*?, length \d+(?: \[(RST\+?|RST:) (.*?)\])?(?: \[\|tcp\])?$`)

// TestReasonCorpus checks Reason against tcpdump's own -v and -vv output
// for the corpus captures: the F5 text, the diagnostic payload with and
// without a name, and their truncated captures.
func TestReasonCorpus(t *testing.T) {
	dir := filepath.Join(snifftest.CorpusDir(t), "tcpdump")
	outs, err := filepath.Glob(filepath.Join(dir, "*-v*.out"))
	if err != nil || len(outs) == 0 {
		snifftest.SkipCorpus(t, "no tcpdump -v output in %s: %v", dir, err)
	}
	checked := map[string]int{}
	for _, out := range outs {
		base := strings.TrimSuffix(filepath.Base(out), ".out")
		verbose := base[strings.LastIndex(base, "-"):]
		pcap := filepath.Join(dir, strings.TrimSuffix(base, verbose)+".pcap")
		if verbose != "-v" && verbose != "-vv" {
			continue
		}
		if _, err := os.Stat(pcap); err != nil {
			continue
		}
		t.Run(base, func(t *testing.T) {
			text, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("failed to read tcpdump output: %v", err)
			}
			var notes [][]string
			for _, line := range strings.Split(string(text), "\n") {
				m := rstNote.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				if strings.HasSuffix(line, "[RST:  [|tcp]") {
					// The magic number, then the capture ends.
					m[1], m[2] = "RST:", ""
				}
				notes = append(notes, m)
			}
			reasons := readReasons(t, pcap)
			if len(reasons) != len(notes) {
				t.Fatalf("read %d resets, tcpdump printed %d", len(reasons), len(notes))
			}
			for i, m := range notes {
				got, kind, note := reasons[i], m[1], m[2]
				switch {
				case kind == "":
					// tcpdump printed no note: no payload, or it was
					// truncated before tcpdump could tell.
					if got != "" && !strings.HasSuffix(m[0], "[|tcp]") {
						t.Errorf("reset %d: Reason = %q, tcpdump saw no reason", i, got)
					}
				case kind == "RST:" && note == "":
					if got != "" {
						t.Errorf("reset %d: Reason = %q for a truncated diagnostic payload, want none", i, got)
					}
				case kind == "RST:" && verbose == "-v":
					var code, pen uint32
					if _, err := fmt.Sscanf(note, "code %d, pen %d", &code, &pen); err != nil {
						t.Fatalf("reset %d: unexpected tcpdump note %q", i, note)
					}
					if !strings.HasPrefix(got, fmt.Sprintf("code %d ", code)) || !strings.HasSuffix(got, fmt.Sprintf(", pen %d", pen)) {
						t.Errorf("reset %d: Reason = %q, tcpdump -v says %q", i, got, note)
					}
				case kind == "RST:":
					// -vv names a registered code instead.
					if !strings.Contains(got, " ("+note+"), pen 0") {
						t.Errorf("reset %d: Reason = %q, tcpdump -vv says %q", i, got, note)
					}
				case kind == "RST+":
					if len(got) <= len(note) || !strings.HasPrefix(got, note) {
						t.Errorf("reset %d: Reason = %q, want the text tcpdump began with: %q", i, got, note)
					}
				default:
					if got != note {
						t.Errorf("reset %d: Reason = %q, tcpdump says %q", i, got, note)
					}
				}
				checked[kind]++
			}
		})
	}
	// The corpus has an F5 text reset and a diagnostic payload (both whole
	// and truncated); make sure the cases above were exercised.
	if checked["RST+"] == 0 || checked["RST:"] == 0 {
		t.Errorf("tcpdump notes checked %v: want both F5 text (RST+) and diagnostic payloads (RST:)", checked)
	}
}

// readReasons returns Reason of every reset in a capture file, in order.
func readReasons(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("failed to open capture: %v", err)
	}
	defer f.Close()
	fr, err := sniff.NewFileReader(f, filter.Options{})
	if err != nil {
		t.Fatalf("failed to read capture: %v", err)
	}
	var reasons []string
	for {
		var e sniff.Event
		err := fr.Next(&e)
		if errors.Is(err, io.EOF) {
			return reasons
		}
		if err != nil {
			t.Fatalf("failed to read capture: %v", err)
		}
		if e.Flags.Has(sniff.FlagRST) {
			reasons = append(reasons, sniff.Reason(e.Payload))
		}
	}
}

// FuzzReason checks that Reason never panics and returns only what it
// documents: nothing, a decoded 8-byte diagnostic payload, or F5's text.
func FuzzReason(f *testing.F) {
	for _, p := range [][]byte{nil, diag(1, 0), diag(1234, 32473), diag(0, 0), []byte("BIG-IP: [0x11c5672:3045] {peer} TCP RST\x00\x00")} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		got := sniff.Reason(p)
		switch {
		case got == "":
		case strings.HasPrefix(got, "code "):
			if len(p) != 8 || p[0] != 0x33 || p[1] != 0xaa {
				t.Fatalf("Reason(%x) = %q: not a diagnostic payload", p, got)
			}
			code, pen := binary.BigEndian.Uint16(p[2:]), binary.BigEndian.Uint32(p[4:])
			if !strings.HasPrefix(got, fmt.Sprintf("code %d", code)) || !strings.HasSuffix(got, fmt.Sprintf(", pen %d", pen)) || code == 0 {
				t.Fatalf("Reason(%x) = %q, want code %d and pen %d", p, got, code, pen)
			}
		default:
			i := strings.Index(got, "BIG-IP:")
			if i < 0 || i >= 16 || !strings.HasPrefix(string(p), got) || strings.HasSuffix(got, "\x00") {
				t.Fatalf("Reason(%q) = %q: not F5's text without its padding", p, got)
			}
		}
	})
}
