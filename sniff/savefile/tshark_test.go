package savefile_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rstwatch/rstwatch/sniff/savefile"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// TestTShark writes files with both writers and checks that Wireshark reads
// them the same way.
func TestTShark(t *testing.T) {
	tshark := snifftest.LookTShark(t)
	caps := testCaptures()
	dir := t.TempDir()
	for _, format := range []string{"pcapng", "pcap"} {
		t.Run(format, func(t *testing.T) {
			path := filepath.Join(dir, "test."+format)
			f, err := os.Create(path)
			if err != nil {
				t.Fatalf("failed to create file: %v", err)
			}
			var w savefile.Writer = savefile.NewPcapNGWriter(f)
			if format == "pcap" {
				w = savefile.NewPcapWriter(f)
			}
			for _, c := range caps {
				if err := w.WritePacket(c.ci, c.ip); err != nil {
					t.Fatalf("failed to write packet: %v", err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatalf("failed to flush: %v", err)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("failed to close file: %v", err)
			}

			out := snifftest.Wireshark(t, tshark, "-r", path)
			if n := strings.Count(out, "\n"); n != len(caps) {
				t.Errorf("tshark printed %d packets, want = %d:\n%s", n, len(caps), out)
			}

			fields := []string{"-T", "fields", "-E", "separator=|", "-e", "frame.time_epoch", "-e", "frame.len"}
			if format == "pcapng" {
				fields = append(fields, "-e", "frame.interface_name", "-e", "frame.comment")
			} else {
				fields = append(fields, "-e", "sll.ifindex", "-e", "sll.pkttype", "-e", "sll.hatype")
			}
			out = snifftest.Wireshark(t, tshark, append([]string{"-r", path}, fields...)...)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != len(caps) {
				t.Fatalf("tshark printed %d lines, want = %d:\n%s", len(lines), len(caps), out)
			}
			for i, c := range caps {
				ts := c.ci.Time
				orig := max(c.ci.OrigLen, len(c.ip))
				var want string
				if format == "pcapng" {
					want = fmt.Sprintf("%d.%09d|%d|%s|%s", ts.Unix(), ts.Nanosecond(), orig, c.ci.Ifname, c.ci.Comment)
				} else {
					pkttype := 0
					if c.ci.Direction == savefile.DirectionOutbound {
						pkttype = 4
					}
					hatype := int(c.ci.HAType)
					if hatype == 0 {
						hatype = savefile.ARPHRDNone
					}
					want = fmt.Sprintf("%d.%09d|%d|%d|%d|%d", ts.Unix(), ts.Nanosecond(), 20+orig, c.ci.Ifindex, pkttype, hatype)
				}
				if c.ci.Ifname == "" {
					// Wireshark names an interface without if_name "unknown".
					lines[i] = strings.Replace(lines[i], "|unknown|", "||", 1)
				}
				if lines[i] != want {
					t.Errorf("packet %d: tshark says %q, want = %q", i, lines[i], want)
				}
			}

			info := capinfos(t, path)
			wantInfo := map[string]string{
				"File type":          map[string]string{"pcapng": "pcapng", "pcap": "nsecpcap"}[format],
				"File encapsulation": map[string]string{"pcapng": "rawip", "pcap": "linux-sll2"}[format],
				"Number of packets":  fmt.Sprint(len(caps)),
			}
			for k, v := range wantInfo {
				if info[k] != v {
					t.Errorf("capinfos says %s: %q, want = %q", k, info[k], v)
				}
			}
		})
	}

	// The corpus, read by both: same packets and timestamps. mergecap
	// concatenates it into one pcapng file (an interface per input file),
	// so tshark starts once, and Wireshark's pcapng writer is checked too.
	t.Run("corpus", func(t *testing.T) {
		cdir := snifftest.CorpusDir(t)
		files := snifftest.CorpusFiles(t, cdir)
		merged := filepath.Join(dir, "corpus.pcapng")
		args := []string{"-a", "-F", "pcapng", "-w", merged}
		for _, name := range files {
			args = append(args, filepath.Join(cdir, name))
		}
		snifftest.Wireshark(t, "mergecap", args...)
		out := snifftest.Wireshark(t, tshark, "-r", merged, "-T", "fields",
			"-e", "frame.time_epoch", "-e", "frame.cap_len", "-e", "frame.len", "-e", "frame.interface_id")
		want := strings.Split(strings.TrimSuffix(out, "\n"), "\n")

		var fromFiles, fromMerged []string
		for i, name := range files {
			fromFiles = append(fromFiles, readSummary(t, filepath.Join(cdir, name), i)...)
		}
		fromMerged = readSummary(t, merged, -1)
		for _, got := range []struct {
			name  string
			lines []string
		}{{"corpus files", fromFiles}, {"merged file", fromMerged}} {
			if len(got.lines) != len(want) {
				t.Errorf("%s: Reader read %d packets, tshark %d", got.name, len(got.lines), len(want))
			}
			for i := range min(len(got.lines), len(want)) {
				if got.lines[i] != want[i] {
					t.Errorf("%s: packet %d: Reader says %q, tshark %q", got.name, i, got.lines[i], want[i])
					break
				}
			}
		}
	})
}

// readSummary reads a capture and prints each packet as tshark's fields
// time_epoch, cap_len, len and interface_id would. A non-negative ifID
// replaces the interface index.
func readSummary(t *testing.T, path string, ifID int) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("failed to open capture: %v", err)
	}
	defer f.Close()
	r, err := savefile.NewReader(f)
	if err != nil {
		t.Fatalf("failed to read capture header of %s: %v", path, err)
	}
	var lines []string
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return lines
		}
		if err != nil {
			t.Fatalf("failed to read packet of %s: %v", path, err)
		}
		id := p.Interface
		if ifID >= 0 {
			id = ifID
		}
		lines = append(lines, fmt.Sprintf("%d.%09d\t%d\t%d\t%d", p.Time.Unix(), p.Time.Nanosecond(), len(p.Data), p.OrigLen, id))
	}
}

// capinfos returns the fields that capinfos prints for a file.
func capinfos(t *testing.T, path string) map[string]string {
	t.Helper()
	info := map[string]string{}
	for _, line := range strings.Split(snifftest.Wireshark(t, "capinfos", "-M", "-c", "-t", "-E", path), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			info[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return info
}
