package sniff

import (
	"regexp"
	"testing"
)

func TestPortName(t *testing.T) {
	tests := []struct {
		port uint16
		want string
	}{
		{0, ""},
		{20, "ftp-data"},
		{22, "ssh"},
		{53, "domain"},
		{80, "http"},
		{443, "https"},
		{3306, "mysql"},
		{5432, "postgresql"},
		{6379, "redis"},
		{7211, ""},
		{8080, "http-alt"},
		{27017, "mongodb"},
		{65535, ""},
	}
	for _, tt := range tests {
		if got := PortName(tt.port); got != tt.want {
			t.Errorf("PortName(%d) = %q, want %q", tt.port, got, tt.want)
		}
	}
}

// TestPortTable checks the table's invariants: sorted by port, each port
// once, names short lowercase service names, and about 60 of them.
func TestPortTable(t *testing.T) {
	name := regexp.MustCompile(`^[a-z][a-z0-9-]{1,15}$`)
	if n := len(tcpPorts); n < 55 || n > 80 {
		t.Errorf("table has %d ports, want about 60", n)
	}
	seen := make(map[string]uint16)
	for i, e := range tcpPorts {
		if i > 0 && tcpPorts[i-1].port >= e.port {
			t.Errorf("port %d after %d: table not sorted or has a duplicate", e.port, tcpPorts[i-1].port)
		}
		if !name.MatchString(e.name) {
			t.Errorf("port %d: bad name %q", e.port, e.name)
		}
		if p, ok := seen[e.name]; ok {
			t.Errorf("name %q for both %d and %d", e.name, p, e.port)
		}
		seen[e.name] = e.port
		if got := PortName(e.port); got != e.name {
			t.Errorf("PortName(%d) = %q, want %q", e.port, got, e.name)
		}
		if e.port > 0 && PortName(e.port-1) != "" && (i == 0 || tcpPorts[i-1].port != e.port-1) {
			t.Errorf("PortName(%d) = %q for a port not in the table", e.port-1, PortName(e.port-1))
		}
	}
}

func TestPortNameAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(1000, func() { sinkPortName, sinkPortName = PortName(443), PortName(1) }); n != 0 {
		t.Fatalf("PortName allocates %v times, want 0", n)
	}
}

var sinkPortName string

func TestPortByName(t *testing.T) {
	for _, e := range tcpPorts {
		if p, ok := PortByName(e.name); !ok || p != e.port {
			t.Errorf("PortByName(%q) = %d, %v; want %d", e.name, p, ok, e.port)
		}
	}
	for name, want := range map[string]uint16{"dns": 53, "postgres": 5432, "https": 443} {
		if p, ok := PortByName(name); !ok || p != want {
			t.Errorf("PortByName(%q) = %d, %v; want %d", name, p, ok, want)
		}
	}
	for _, name := range []string{"", "HTTP", "htp", "80"} {
		if p, ok := PortByName(name); ok {
			t.Errorf("PortByName(%q) = %d, want no port", name, p)
		}
	}
}
