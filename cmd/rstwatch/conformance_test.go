//go:build linux

package main

// Linux only, as they use the helpers of integration_linux_test.go.

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/render"
	"github.com/rstwatch/rstwatch/sniff/snifftest"
)

// The conformance test reads every capture of the external corpus (real
// captures from tcpdump's and Suricata's test suites) with
//
//	rstwatch watch -r FILE --json
//
// and checks the resets against two oracles that share no code with
// rstwatch:
//
//   - tshark -Y tcp.flags.reset==1 lists the resets of each file. Every
//     reset tshark finds must be printed by rstwatch, with the same time,
//     addresses, ports, flags, sequence and acknowledgement numbers, window
//     and length, and rstwatch must print no other.
//   - tcpdump's own output for its captures (the .out files beside them)
//     gives the same fields as tcpdump prints them.
//
// Differences that are expected by design are listed in corpusExceptions
// with the reason; any other difference fails. The kinds that can arise,
// none of which occurs in the corpus today:
//
//   - a reset quoted inside an ICMP error: tshark dissects the quoted TCP
//     header and matches it; rstwatch reports resets that travel, not
//     quotes of them (the filter wants TCP as the IP packet's protocol).
//   - an IPv4 reset split into fragments: tshark reassembles it and
//     reports it at the last fragment; rstwatch decodes the first fragment
//     (the kernel filter drops non-first fragments, as live).
//   - a pcapng file with several interfaces holding a reset forwarded
//     across them: rstwatch reports it once (the same deduplication as
//     live, within 100 ms), tshark once per copy. A pcap file has a single
//     interface, so there deduplication never applies.
//   - the AE flag (RFC 9768, the former NS bit): tcpdump and tshark show
//     it, rstwatch's flags are the eight in byte 13 of the TCP header.
//
// One RST bit in the corpus is no reset to either oracle or to rstwatch,
// though the corpus README counts it: frame 7 of
// suricata-verify/drop-protocol-change.pcap has a TCP data offset of 8
// bytes (below the minimum of 20). tshark reports a bogus header length
// and dissects no flags; rstwatch's decoder rejects it; a TCP stack drops
// it unread (Linux: tcp_v4_rcv, th->doff < sizeof(struct tcphdr) / 4).
//
// Things tcpdump prints differently by design, which the test accounts for
// rather than lists: tcpdump prints sequence and acknowledgement numbers
// relative to the first it saw of a connection (unless -S); rstwatch prints
// them as on the wire, and the test recomputes tcpdump's relative ones
// (tcpdumpBases). tcpdump prints microseconds; rstwatch's JSON has
// nanoseconds, compared truncated.
var corpusExceptions = map[string]struct {
	onlyTShark, onlyRstwatch int
	why                      string
}{}

// corpusReset is one reset: from rstwatch's JSON or from tshark.
type corpusReset struct {
	frame        int // tshark's frame number; 0 for rstwatch's resets
	time         time.Time
	src, dst     netip.Addr
	sport, dport uint16
	flags        string // tcpdump notation
	seq, ack     uint32
	win          uint16
	length       int
	reason       string // rstwatch's only
}

// key is what both oracles must agree on. The acknowledgement number only
// counts with ACK set, as tcpdump and tshark show it only then.
func (r *corpusReset) key() string {
	ack := ""
	if strings.Contains(r.flags, ".") {
		ack = fmt.Sprintf(", ack %d", r.ack)
	}
	return fmt.Sprintf("%s %v > %v: Flags [%s], seq %d%s, win %d, length %d",
		r.time.UTC().Format(render.JSONTime), netip.AddrPortFrom(r.src, r.sport), netip.AddrPortFrom(r.dst, r.dport),
		r.flags, r.seq, ack, r.win, r.length)
}

// lookTShark returns the path of tshark, or skips the test.
func lookTShark(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("skipping, tshark not installed (apt-get install tshark; .ci/run installs it): no oracle to check against")
	}
	return path
}

// tsharkFields runs tshark -r path -Y filter -T fields and returns the
// fields of each packet. Anything on stderr but the notice about running as
// root fails the test: a warning means tshark did not read the file cleanly.
func tsharkFields(t *testing.T, tshark, path, filter string, fields ...string) [][]string {
	t.Helper()
	args := []string{"-r", path, "-n", "-Y", filter, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	stdout := snifftest.Wireshark(t, tshark, args...)
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		if line == "" {
			continue
		}
		row := strings.Split(line, "|")
		if len(row) != len(fields) {
			t.Fatalf("tshark printed %d fields, want %d: %q", len(row), len(fields), line)
		}
		rows = append(rows, row)
	}
	return rows
}

var tsharkResetFields = []string{"frame.number", "frame.time_epoch", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst",
	"tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw", "tcp.window_size_value", "tcp.len"}

// tsharkResets lists the resets of a capture file as tshark sees them.
func tsharkResets(t *testing.T, tshark, path string) []corpusReset {
	t.Helper()
	var out []corpusReset
	for _, f := range tsharkFields(t, tshark, path, "tcp.flags.reset==1", tsharkResetFields...) {
		if strings.Contains(strings.Join(f, "|"), ",") {
			// Two IP or TCP headers: a reset quoted in an ICMP error.
			t.Logf("frame %s: tshark matched a TCP header inside another packet: %q", f[0], f)
		}
		var r corpusReset
		var err error
		r.frame = atoi(t, f[0])
		if r.time, err = epochTime(f[1]); err != nil {
			t.Fatalf("frame %s: bad frame.time_epoch: %v", f[0], err)
		}
		r.src, r.dst = parseAddr(t, f[2]+f[3]), parseAddr(t, f[4]+f[5])
		r.sport, r.dport = uint16(atoi(t, f[6])), uint16(atoi(t, f[7]))
		flags, err := strconv.ParseUint(strings.TrimPrefix(f[8], "0x"), 16, 16)
		if err != nil {
			t.Fatalf("frame %s: bad tcp.flags %q", f[0], f[8])
		}
		r.flags = tcpdumpFlags(uint16(flags))
		r.seq, r.ack = uint32(atoi(t, f[9])), uint32(atoi(t, f[10]))
		r.win, r.length = uint16(atoi(t, f[11])), atoi(t, f[12])
		out = append(out, r)
	}
	return out
}

// tcpdumpFlags renders TCP flag bits as tcpdump does (print-tcp.c
// tcp_flag_values), independently of package sniff.
func tcpdumpFlags(bits uint16) string {
	const chars = "FSRP.UEWe" // FIN SYN RST PSH ACK URG ECE CWR AE
	var b []byte
	for i := range len(chars) {
		if bits&(1<<i) != 0 {
			b = append(b, chars[i])
		}
	}
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}

// epochTime parses tshark's frame.time_epoch ("1361916199.190965000").
func epochTime(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	frac = (frac + "000000000")[:9]
	ns, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(n, ns), nil
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

func parseAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("not an address: %q", s)
	}
	return a
}

// rstwatchResets reads a capture file with the binary, as a user would.
func rstwatchResets(t *testing.T, path string) []corpusReset {
	t.Helper()
	stdout, stderr, code := run(t, exec.Command(binary, "watch", "-r", path, "--json"))
	if code != 0 {
		t.Fatalf("rstwatch watch -r %s exited with %d: %s", path, code, stderr)
	}
	lines := jsonLines(t, stdout)
	if want := fmt.Sprintf("%d resets in %s (", len(lines), path); !strings.HasPrefix(stderr, want) {
		t.Errorf("stderr %q, want the summary %q...", stderr, want)
	}
	var out []corpusReset
	for _, m := range lines {
		var r corpusReset
		ts, err := time.Parse(time.RFC3339Nano, m["time"].(string))
		if err != nil {
			t.Fatalf("bad time %v: %v", m["time"], err)
		}
		r.time = ts
		r.src, r.dst = parseAddr(t, m["src"].(string)), parseAddr(t, m["dst"].(string))
		r.sport, r.dport = uint16(num(t, m, "src_port")), uint16(num(t, m, "dst_port"))
		r.flags = m["flags"].(string)
		r.seq, r.ack = uint32(num(t, m, "seq")), uint32(num(t, m, "ack"))
		r.win, r.length = uint16(num(t, m, "window")), int(num(t, m, "payload_len"))
		switch reason := m["reason"].(type) {
		case nil:
		case string:
			r.reason = reason
		default:
			t.Fatalf("reason = %#v, want a string or null", m["reason"])
		}
		out = append(out, r)
	}
	return out
}

func TestConformance(t *testing.T) {
	dir := snifftest.CorpusDir(t)
	tshark := lookTShark(t)
	files := snifftest.CorpusFiles(t, dir)
	if len(files) == 0 {
		t.Fatalf("no capture files in %s", dir)
	}
	var (
		total   = make(chan int, len(files))
		checked = make(chan int, len(files))
	)
	t.Run("files", func(t *testing.T) {
		for _, name := range files {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				path := filepath.Join(dir, name)
				got := rstwatchResets(t, path)
				want := tsharkResets(t, tshark, path)
				total <- len(want)
				compareResets(t, name, got, want)
				if strings.HasPrefix(name, "tcpdump"+string(filepath.Separator)) {
					checked <- compareTcpdump(t, tshark, path, got, want)
				}
			})
		}
	})
	close(total)
	close(checked)
	var resets, tcpdumpResets int
	for n := range total {
		resets += n
	}
	for n := range checked {
		tcpdumpResets += n
	}
	t.Logf("%d files, %d resets found by tshark; %d resets compared with tcpdump's output", len(files), resets, tcpdumpResets)
	if resets == 0 || tcpdumpResets == 0 {
		t.Errorf("compared %d resets with tshark and %d with tcpdump: the corpus should have some of each", resets, tcpdumpResets)
	}
}

// compareResets matches rstwatch's resets with tshark's, as multisets of
// keys, and fails on any difference that corpusExceptions does not list.
func compareResets(t *testing.T, name string, got, want []corpusReset) {
	t.Helper()
	count := map[string]int{}
	for i := range want {
		count[want[i].key()]++
	}
	for i := range got {
		count[got[i].key()]--
	}
	var onlyTShark, onlyRstwatch []string
	for k, n := range count {
		for ; n > 0; n-- {
			onlyTShark = append(onlyTShark, k)
		}
		for ; n < 0; n++ {
			onlyRstwatch = append(onlyRstwatch, k)
		}
	}
	sort.Strings(onlyTShark)
	sort.Strings(onlyRstwatch)
	exc := corpusExceptions[filepath.ToSlash(name)]
	if len(onlyTShark) != exc.onlyTShark || len(onlyRstwatch) != exc.onlyRstwatch {
		t.Errorf("rstwatch printed %d resets, tshark found %d\nonly tshark:\n\t%s\nonly rstwatch:\n\t%s",
			len(got), len(want), strings.Join(onlyTShark, "\n\t"), strings.Join(onlyRstwatch, "\n\t"))
	} else if exc.why != "" {
		t.Logf("documented difference (%d only in tshark, %d only in rstwatch): %s", exc.onlyTShark, exc.onlyRstwatch, exc.why)
	}
}

// tcpdumpRecord starts a packet in tcpdump's output with -# and -tttt: the
// frame number and the time in UTC (tcpdump's tests run with TZ=GMT0).
var tcpdumpRecord = regexp.MustCompile(`^\s*(\d+)  (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}) `)

// tcpdumpTCP is tcpdump's TCP line, with -v's checksum, the options (which
// may nest brackets) and the payload notes after the length.
var tcpdumpTCP = regexp.MustCompile(`(\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]*)\],(?: cksum 0x[0-9a-f]{4} \([^)]*\),)? seq (\d+)(?::(\d+))?,(?: ack (\d+),)? win (\d+),(?: urg \d+,)?(?: options \[.*\],)? length (\d+)( \[RST.*)?`)

// tcpdumpReset is a reset as tcpdump printed it.
type tcpdumpReset struct {
	frame      int
	time       string
	line       string
	src, dst   string
	sport      string
	dport      string
	flags      string
	seq        string // "N" or "N:M"
	ack        string // "" without ACK
	win, lengt string
	note       string // the -v note on the payload: " [RST ...]"
}

// parseTcpdump returns the resets in a tcpdump output file.
func parseTcpdump(t *testing.T, path string) []tcpdumpReset {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("failed to read tcpdump output: %v", err)
	}
	var (
		out   []tcpdumpReset
		frame int
		ts    string
		seen  bool // the TCP line of this record was seen
	)
	for _, line := range strings.Split(string(text), "\n") {
		if m := tcpdumpRecord.FindStringSubmatch(line); m != nil {
			frame, ts, seen = atoi(t, m[1]), m[2], false
		}
		m := tcpdumpTCP.FindStringSubmatch(line)
		if m == nil || seen || frame == 0 {
			continue
		}
		seen = true
		if !strings.Contains(m[5], "R") {
			continue
		}
		seq := m[6]
		if m[7] != "" {
			seq += ":" + m[7]
		}
		out = append(out, tcpdumpReset{frame: frame, time: ts, line: strings.TrimSpace(line),
			src: m[1], sport: m[2], dst: m[3], dport: m[4], flags: m[5], seq: seq, ack: m[8],
			win: m[9], lengt: m[10], note: m[11]})
	}
	return out
}

// seqBase is what tcpdump subtracts from a segment's numbers.
type seqBase struct{ seq, ack uint32 }

// tcpdumpBases recomputes tcpdump's relative sequence numbers
// (print-tcp.c, tcp_print without -S): the first segment with ACK of a
// connection (or any with SYN and ACK) records its numbers, printed as they
// are; each later segment with ACK of that connection is printed relative
// to them. A connection is keyed by its endpoints in a fixed order (the
// lower port first, else the lower address), so both directions share one
// record. It returns what tcpdump subtracted from each frame.
func tcpdumpBases(t *testing.T, tshark, path string) map[int]seqBase {
	t.Helper()
	type conn struct{ a, b netip.AddrPort }
	convs := map[conn]seqBase{}
	bases := map[int]seqBase{}
	for _, f := range tsharkFields(t, tshark, path, "tcp", "frame.number", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst",
		"tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw") {
		if strings.Contains(strings.Join(f, "|"), ",") {
			continue // a TCP header quoted in ICMP: tcpdump does not print it as TCP
		}
		flags, err := strconv.ParseUint(strings.TrimPrefix(f[7], "0x"), 16, 16)
		if err != nil {
			t.Fatalf("frame %s: bad tcp.flags %q", f[0], f[7])
		}
		const syn, ack = 0x02, 0x10
		if flags&ack == 0 {
			continue
		}
		src := netip.AddrPortFrom(parseAddr(t, f[1]+f[2]), uint16(atoi(t, f[5])))
		dst := netip.AddrPortFrom(parseAddr(t, f[3]+f[4]), uint16(atoi(t, f[6])))
		seq, acknum := uint32(atoi(t, f[8])), uint32(atoi(t, f[9]))
		rev := src.Port() > dst.Port() || (src.Port() == dst.Port() && src.Addr().Compare(dst.Addr()) > 0)
		k := conn{src, dst}
		if rev {
			k = conn{dst, src}
		}
		c, ok := convs[k]
		if !ok || flags&syn != 0 {
			if rev {
				c = seqBase{seq: acknum - 1, ack: seq}
			} else {
				c = seqBase{seq: seq, ack: acknum - 1}
			}
			convs[k] = c
			continue // printed as is
		}
		if rev {
			bases[atoi(t, f[0])] = seqBase{seq: c.ack, ack: c.seq}
		} else {
			bases[atoi(t, f[0])] = c
		}
	}
	return bases
}

// compareTcpdump checks rstwatch's resets against each tcpdump output of
// the capture (default, -v and -vv) and returns how many it compared.
func compareTcpdump(t *testing.T, tshark, path string, got, tsharkList []corpusReset) int {
	t.Helper()
	base := strings.TrimSuffix(path, filepath.Ext(path))
	var outs []string
	for _, suffix := range []string{"", "-v", "-vv"} {
		if _, err := os.Stat(base + suffix + ".out"); err == nil {
			outs = append(outs, base+suffix+".out")
		}
	}
	if len(outs) == 0 {
		t.Fatalf("no tcpdump output (.out, -v.out or -vv.out) beside %s", path)
	}
	// rstwatch's resets by tshark's frame number; compareResets has
	// checked that they agree.
	byKey := map[string]*corpusReset{}
	for i := range got {
		byKey[got[i].key()] = &got[i]
	}
	byFrame := map[int]*corpusReset{}
	for i := range tsharkList {
		if r := byKey[tsharkList[i].key()]; r != nil {
			byFrame[tsharkList[i].frame] = r
		}
	}
	bases := tcpdumpBases(t, tshark, path)
	compared := 0
	for _, out := range outs {
		resets := parseTcpdump(t, out)
		if len(resets) != len(got) {
			t.Errorf("%s: tcpdump printed %d resets, rstwatch %d", filepath.Base(out), len(resets), len(got))
		}
		for _, d := range resets {
			r := byFrame[d.frame]
			if r == nil {
				t.Errorf("%s: frame %d: rstwatch did not print this reset: %s", filepath.Base(out), d.frame, d.line)
				continue
			}
			b := bases[d.frame]
			want := tcpdumpReset{
				frame: d.frame, time: r.time.UTC().Format("2006-01-02 15:04:05.000000"), line: d.line,
				src: r.src.String(), sport: strconv.Itoa(int(r.sport)), dst: r.dst.String(), dport: strconv.Itoa(int(r.dport)),
				flags: r.flags, seq: strconv.FormatUint(uint64(r.seq-b.seq), 10),
				win: strconv.Itoa(int(r.win)), lengt: strconv.Itoa(r.length), note: d.note,
			}
			if r.length > 0 {
				want.seq += ":" + strconv.FormatUint(uint64(r.seq-b.seq+uint32(r.length)), 10)
			}
			if strings.Contains(r.flags, ".") {
				want.ack = strconv.FormatUint(uint64(r.ack-b.ack), 10)
			}
			if d != want {
				t.Errorf("%s: frame %d:\ntcpdump  %+v\nrstwatch %+v", filepath.Base(out), d.frame, d, want)
			}
			checkNote(t, filepath.Base(out), d, r.reason)
			compared++
		}
	}
	return compared
}

// checkNote compares rstwatch's reason with what tcpdump -v printed about
// the payload of a reset (print-tcp.c): "[RST+ TEXT]" for the first 30
// bytes of text, "[RST: code C, pen P]" (-v) or "[RST: NAME]" (-vv) for a
// diagnostic payload, "[RST:  [|tcp]" when that was cut short.
func checkNote(t *testing.T, out string, d tcpdumpReset, reason string) {
	t.Helper()
	note := strings.TrimPrefix(d.note, " ")
	var ok bool
	switch {
	case note == "" || note == "[|tcp]":
		// tcpdump without -v prints no note; rstwatch may still show
		// the reason (checked with the -v output, where there is one).
		return
	case note == "[RST:  [|tcp]":
		ok = reason == ""
	case strings.HasPrefix(note, "[RST: code "):
		var code, pen int
		_, err := fmt.Sscanf(note, "[RST: code %d, pen %d]", &code, &pen)
		ok = err == nil && strings.HasPrefix(reason, fmt.Sprintf("code %d ", code)) && strings.HasSuffix(reason, fmt.Sprintf(", pen %d", pen))
	case strings.HasPrefix(note, "[RST: "):
		name := strings.TrimSuffix(strings.TrimPrefix(note, "[RST: "), "]")
		ok = strings.Contains(reason, " ("+name+"), pen 0")
	case strings.HasPrefix(note, "[RST+ "):
		text, _, _ := strings.Cut(strings.TrimPrefix(note, "[RST+ "), "] [|tcp]")
		text = strings.TrimSuffix(text, "]")
		ok = len(reason) > len(text) && strings.HasPrefix(reason, text)
	default:
		t.Errorf("%s: frame %d: unknown tcpdump note %q", out, d.frame, note)
		return
	}
	if !ok {
		t.Errorf("%s: frame %d: reason %q does not match tcpdump's %q", out, d.frame, reason, note)
	}
}
