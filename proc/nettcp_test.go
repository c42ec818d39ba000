package proc

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseNetTCPFixtures(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []Socket
	}{
		{
			name: "tcp",
			file: "net/tcp",
			want: []Socket{
				{Local: ap("0.0.0.0:2024"), Remote: ap("0.0.0.0:0"), State: Listen, Inode: 1674},
				// Accept queue of 3 shows as rx_queue; tx_queue of a listener is 0.
				{Local: ap("127.0.0.1:8080"), Remote: ap("0.0.0.0:0"), State: Listen, RecvQ: 3, UID: 1000, Inode: 4294967296123},
				{Local: ap("127.0.0.1:50000"), Remote: ap("127.0.0.1:8080"), State: Established, SendQ: 16, RecvQ: 32, UID: 1000, Inode: math.MaxUint64},
				{Local: ap("192.0.2.2:38402"), Remote: ap("203.0.113.80:443"), State: TimeWait},
				{Local: ap("127.0.0.1:54321"), Remote: ap("127.0.0.1:8080"), State: SynSent, SendQ: 1, UID: 65534, Inode: 98765},
			},
		},
		{
			name: "tcp6",
			file: "net/tcp6",
			want: []Socket{
				{Local: ap("[::]:8081"), Remote: ap("[::]:0"), State: Listen, Inode: 23456},
				{Local: ap("[::1]:54322"), Remote: ap("[::1]:8081"), State: Established, UID: 1000, Inode: 23457},
				{Local: ap("[::ffff:127.0.0.1]:8081"), Remote: ap("[::ffff:127.0.0.1]:50001"), State: CloseWait, RecvQ: 5, UID: 1000, Inode: 23458},
				{Local: ap("[2001:db8::1]:443"), Remote: ap("[2001:db8::2]:57344"), State: TimeWait},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNetTCP(bytes.NewReader(nativeNetTCP(t, fixtureRoot+"/"+tt.file)))
			if err != nil {
				t.Fatalf("failed to parse: %v", err)
			}
			if d := diffSockets(tt.want, got); d != "" {
				t.Fatalf("unexpected sockets (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseNetTCPLineErrors(t *testing.T) {
	const good = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1674 1 0 100 0 0 10 0"
	tests := []struct {
		name, line, quote string
	}{
		{"too_few_columns", "   0: 0100007F:1F90 00000000:0000 0A", "want at least 10 columns"},
		{"sl_without_colon", strings.Replace(good, "0:", "0 ", 1), "bad sl"},
		{"local_no_port", strings.Replace(good, "0100007F:1F90", "0100007F1F90", 1), `bad local_address "0100007F1F90"`},
		{"local_odd_width", strings.Replace(good, "0100007F:1F90", "100007F:1F90", 1), "bad local_address"},
		{"remote_not_hex", strings.Replace(good, "00000000:0000", "0000000G:0000", 1), `bad rem_address "0000000G:0000"`},
		{"port_too_big", strings.Replace(good, ":1F90", ":11F90", 1), "bad local_address"},
		{"mixed_families", strings.Replace(good, "00000000:0000", "00000000000000000000000000000000:0000", 1), "differ in family"},
		{"state_zero", strings.Replace(good, " 0A ", " 00 ", 1), `bad st "00"`},
		{"state_unknown", strings.Replace(good, " 0A ", " 7F ", 1), `bad st "7F"`},
		{"queues_no_colon", strings.Replace(good, "00000000:00000000", "0000000000000000", 1), "bad tx_queue:rx_queue"},
		{"queue_overflow", strings.Replace(good, "00000000:00000000", "100000000:00000000", 1), "bad tx_queue:rx_queue"},
		{"uid_negative", strings.Replace(good, "     0        0 1674", "    -1        0 1674", 1), `bad uid "-1"`},
		{"inode_overflow", strings.Replace(good, " 1674 ", " 18446744073709551616 ", 1), `bad inode "18446744073709551616"`},
		{"inode_not_number", strings.Replace(good, " 1674 ", " 0x10 ", 1), `bad inode "0x10"`},
	}
	if _, err := parseNetTCPLine([]byte(good)); err != nil {
		t.Fatalf("failed to parse the good line: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseNetTCP(strings.NewReader(tt.line + "\n"))
			if !errors.Is(err, ErrParse) {
				t.Fatalf("ParseNetTCP error = %v, want ErrParse", err)
			}
			if !strings.Contains(err.Error(), tt.quote) {
				t.Fatalf("error %q does not mention %q", err, tt.quote)
			}
			if !strings.Contains(err.Error(), strings.TrimSpace(tt.line)[:10]) {
				t.Fatalf("error %q does not quote the line", err)
			}
		})
	}
}

func TestParseNetTCPHeaderAndBlank(t *testing.T) {
	got, err := ParseNetTCP(strings.NewReader("  sl  local_address rem_address   st\n\n"))
	if err != nil || len(got) != 0 {
		t.Fatalf("ParseNetTCP(header only) = %v, %v; want none, nil", got, err)
	}
}

func TestParseNetTCPNoAllocsPerLine(t *testing.T) {
	line := []byte("   2: 0100007F:C350 0100007F:1F90 01 00000010:00000020 02:000000C8 00000000  1000        0 18446744073709551615 2 0 20 4 30 10 -1")
	if n := testing.AllocsPerRun(1000, func() { sinkSocket, _ = parseNetTCPLine(line) }); n != 0 {
		t.Fatalf("parseNetTCPLine allocates %v times, want 0", n)
	}
}

var sinkSocket Socket

func TestFSDumpFiltersAndFamilies(t *testing.T) {
	p, err := NewFS(nativeRoot(t, fixtureRoot))
	if err != nil {
		t.Fatalf("failed to open fixture FS: %v", err)
	}
	got, err := p.Dump(afInet, Mask(Listen))
	if err != nil {
		t.Fatalf("failed to dump: %v", err)
	}
	if len(got) != 2 || got[1].Local != ap("127.0.0.1:8080") {
		t.Fatalf("Dump(AF_INET, LISTEN) = %+v, want the two listeners", got)
	}
	got, err = p.Dump(afInet6, AllStates&^Mask(TimeWait))
	if err != nil || len(got) != 3 {
		t.Fatalf("Dump(AF_INET6, !TIME-WAIT) = %d sockets, %v; want 3", len(got), err)
	}
	if _, err := p.Dump(3, AllStates); err == nil {
		t.Fatal("Dump(family 3) succeeded, want an error")
	}
	// IPv6 disabled: no tcp6 file is no sockets, not an error.
	empty := t.TempDir()
	q, _ := NewFS(empty)
	if got, err := q.Dump(afInet6, AllStates); err != nil || len(got) != 0 {
		t.Fatalf("Dump(AF_INET6) without tcp6 = %v, %v; want none, nil", got, err)
	}
	if _, err := q.Dump(afInet, AllStates); err == nil {
		t.Fatal("Dump(AF_INET) without tcp succeeded, want an error")
	}
}

func TestNewFS(t *testing.T) {
	p, err := NewFS("")
	if err != nil {
		t.Fatalf("failed to open default FS: %v", err)
	}
	if p.Root() != "/proc" && p.Root() != DefaultRoot {
		t.Fatalf("NewFS(\"\").Root() = %q", p.Root())
	}
	if _, err := NewFS(fixtureRoot + "/net/tcp"); err == nil {
		t.Fatal("NewFS(file) succeeded, want an error")
	}
	if _, err := NewFS("/nonexistent"); err == nil {
		t.Fatal("NewFS(missing) succeeded, want an error")
	}
	if got, want := p.NetOf(42).net, "/proc/42/net"; got != want {
		t.Fatalf("NetOf(42) reads %s, want %s", got, want)
	}
}

func TestStateStringAndMask(t *testing.T) {
	for s, want := range map[State]string{Established: "ESTAB", SynSent: "SYN-SENT", Listen: "LISTEN", Close: "CLOSE", TimeWait: "TIME-WAIT", NewSynRecv: "SYN-RECV", 0: "UNKNOWN(0)", 99: "UNKNOWN(99)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
	m := Mask(Listen, Established)
	if !m.Has(Listen) || !m.Has(Established) || m.Has(TimeWait) || m.Has(200) {
		t.Fatalf("Mask(LISTEN, ESTAB) = %#x has the wrong members", m)
	}
	// ss's "all": bits 1..13, TCP_BOUND_INACTIVE included.
	if AllStates != 0x3ffe {
		t.Fatalf("AllStates = %#x, want 0x3ffe", AllStates)
	}
	if q, b, ok := (Socket{State: Listen, RecvQ: 2, SendQ: 128}).AcceptQueue(); !ok || q != 2 || b != 128 {
		t.Fatalf("AcceptQueue() = %d, %d, %v", q, b, ok)
	}
	if _, _, ok := (Socket{State: Established}).AcceptQueue(); ok {
		t.Fatal("AcceptQueue() of ESTAB reported ok")
	}
}
