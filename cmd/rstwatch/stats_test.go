package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestParseAlertsUsage checks the command's wrapping of a rule's error:
// a usage error that quotes the flag and the expression (the grammar's own
// messages are tested in proc/counters).
func TestParseAlertsUsage(t *testing.T) {
	for _, tt := range []struct{ expr, want string }{
		{"", `invalid --alert "": want NAME OP VALUE[/s|/m]`},
		{"AttemptFails", `invalid --alert "AttemptFails": want NAME OP VALUE[/s|/m]`},
		{"AttemptFails=2", `invalid --alert "AttemptFails=2": use == to compare for equality`},
		{"Resets>1", `invalid --alert "Resets>1": unknown counter "Resets" (counters: AttemptFails, EstabResets, OutRsts,`},
	} {
		_, err := parseAlerts([]string{"AttemptFails>1", tt.expr})
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseAlerts(%q) error %v is not a usage error", tt.expr, err)
		}
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("parseAlerts(%q) error %q, want %q...", tt.expr, err, tt.want)
		}
	}
	rules, err := parseAlerts([]string{"AttemptFails>2/s", "listenoverflows>0"})
	if err != nil || len(rules) != 2 || rules[1].Text != "ListenOverflows>0" {
		t.Errorf("parseAlerts = %v, %v", rules, err)
	}
}

func TestStatsBadInput(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"bad_alert", []string{"stats", "--alert", "AttemptFails>>2"}, `invalid --alert "AttemptFails>>2": value ">2"`},
		{"unknown_counter", []string{"stats", "--alert", "Resets>1"}, `unknown counter "Resets" (counters: AttemptFails,`},
		{"zero_interval", []string{"stats", "--interval", "0s"}, "invalid --interval 0s: want at least 10ms"},
		{"bad_interval", []string{"stats", "--interval", "fast"}, `invalid value "fast" for flag -interval`},
		{"negative_count", []string{"stats", "-c", "-2"}, "invalid --count -2"},
		{"stray_argument", []string{"stats", "AttemptFails>1"}, `unexpected argument "AttemptFails>1"`},
		{"sockets_bad_port", []string{"sockets", "--port", "0"}, "invalid --port 0: want 1-65535"},
		{"sockets_stray_argument", []string{"sockets", "ESTAB"}, `unexpected argument "ESTAB"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(t, exec.Command(binary, tt.args...))
			assertOneLineError(t, stdout, stderr, code, exitUsage, tt.want)
		})
	}
}

func TestStatsHelp(t *testing.T) {
	for _, tt := range []struct {
		cmd  string
		want []string
	}{
		{"stats", []string{"--interval", "--count", "--json", "--alert", "Examples", "AttemptFails>2/s", "TCPTimeouts", "status 3"}},
		{"sockets", []string{"--listening", "--port", "--json", "Examples", "Recv-Q", "container"}},
	} {
		var out, errOut bytes.Buffer
		if err := newApp(&out, &errOut).Run([]string{"rstwatch", tt.cmd, "--help"}); err != nil {
			t.Fatalf("failed to run %s --help: %v", tt.cmd, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s --help lacks %q", tt.cmd, w)
			}
		}
	}
}
