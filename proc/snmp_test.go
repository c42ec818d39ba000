package proc

import (
	"errors"
	"strings"
	"testing"
)

func TestCountersFixture(t *testing.T) {
	p, err := NewFS(fixtureRoot)
	if err != nil {
		t.Fatalf("failed to open fixture FS: %v", err)
	}
	c, err := p.Counters()
	if err != nil {
		t.Fatalf("failed to read counters: %v", err)
	}
	// Values from the recorded snmp/netstat of the development machine.
	for k, want := range map[string]uint64{
		"Tcp.RtoMin":             200,
		"Tcp.ActiveOpens":        31,
		"Tcp.InSegs":             2294,
		"Tcp.OutRsts":            2,
		"Tcp.AttemptFails":       0,
		"TcpExt.ListenOverflows": 0,
		"IcmpMsg.InType3":        1,
	} {
		if got, ok := c[k]; !ok || got != want {
			t.Errorf("%s = %d, %v; want %d", k, got, ok, want)
		}
	}
	if v := int64(c["Tcp.MaxConn"]); v != -1 {
		t.Errorf("Tcp.MaxConn = %d, want -1", v)
	}
	for _, k := range []string{"TcpExt.TCPAbortOnData", "TcpExt.TCPAbortOnClose", "TcpExt.EmbryonicRsts", "TcpExt.ListenDrops", "Tcp.EstabResets"} {
		if _, ok := c[k]; !ok {
			t.Errorf("counter %s missing", k)
		}
	}
	if _, ok := c["TcpExt.NoSuchCounter"]; ok {
		t.Error("made-up counter present")
	}
}

func TestParseSNMPErrors(t *testing.T) {
	tests := []struct {
		name, in, quote string
	}{
		{"no_prefix", "Tcp RtoMin\nTcp 1\n", `"Tcp RtoMin"`},
		{"missing_values", "Tcp: RtoMin RtoMax\n", `header line "Tcp: RtoMin RtoMax" has no value line`},
		{"prefix_mismatch", "Tcp: RtoMin\nUdp: 1\n", `want a "Tcp:" value line, got line "Udp: 1"`},
		{"count_mismatch", "Tcp: RtoMin RtoMax\nTcp: 1\n", `2 names but 1 values in line "Tcp: 1"`},
		{"not_number", "Tcp: RtoMin\nTcp: 1x\n", `bad value "1x" for Tcp.RtoMin`},
		{"overflow", "Tcp: InSegs\nTcp: 18446744073709551616\n", `bad value "18446744073709551616"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSNMP(strings.NewReader(tt.in), nil)
			if !errors.Is(err, ErrParse) {
				t.Fatalf("ParseSNMP error = %v, want ErrParse", err)
			}
			if !strings.Contains(err.Error(), tt.quote) {
				t.Fatalf("error %q does not mention %q", err, tt.quote)
			}
		})
	}
}

func TestCountersSub(t *testing.T) {
	a := Counters{"Tcp.OutRsts": 10, "Tcp.AttemptFails": 3, "TcpExt.New": 1}
	b := Counters{"Tcp.OutRsts": 7, "Tcp.AttemptFails": 3}
	d := a.Sub(b)
	if len(d) != 2 || d["Tcp.OutRsts"] != 3 || d["Tcp.AttemptFails"] != 0 {
		t.Fatalf("Sub = %v", d)
	}
}
