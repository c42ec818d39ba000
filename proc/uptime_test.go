package proc

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseUptime(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"350735.47 234388.90\n", 350735.47, true},
		{"12.5", 12.5, true},
		{"  7 1\n", 7, true},
		{"0.00 0.00\n", 0, true},
		{"", 0, false},
		{"\n", 0, false},
		{"abc 1\n", 0, false},
		{"-3 1\n", 0, false},
		{"NaN 1\n", 0, false},
		{"+Inf 1\n", 0, false},
		{"1e999 1\n", 0, false},
	} {
		got, err := ParseUptime([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseUptime(%q) = %v, %v; want %v, ok %t", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestUptime(t *testing.T) {
	dir := t.TempDir()
	p, err := NewFS(dir)
	if err != nil {
		t.Fatalf("failed to open fixture: %v", err)
	}
	if _, err := p.Uptime(); err == nil {
		t.Errorf("Uptime without the file succeeded")
	}
	if err := os.WriteFile(filepath.Join(dir, "uptime"), []byte("86400.25 1000.00\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := p.Uptime(); err != nil || got != 86400.25 {
		t.Errorf("Uptime() = %v, %v; want 86400.25", got, err)
	}

	// The real one: this system has been up for some time.
	host, err := NewFS("")
	if err != nil {
		t.Fatalf("failed to open /proc: %v", err)
	}
	if got, err := host.Uptime(); err != nil || got <= 0 {
		t.Errorf("host Uptime() = %v, %v; want more than 0", got, err)
	}
}
