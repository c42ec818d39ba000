package main

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binary is the rstwatch executable built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	// A re-executed test binary playing a helper process (helper_test.go).
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	dir, err := os.MkdirTemp("", "rstwatch-test")
	if err != nil {
		panic(err)
	}
	// World-readable so the unprivileged-user test can run it.
	os.Chmod(dir, 0o755)
	binary = filepath.Join(dir, "rstwatch")
	cmd := exec.Command("go", "build", "-trimpath", "-o", binary, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic("failed to build rstwatch: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestBinaryIsStatic(t *testing.T) {
	f, err := elf.Open(binary)
	if err != nil {
		t.Fatalf("failed to open binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("binary has a %v program header: not statically linked", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("binary needs shared libraries %v", libs)
	}
}

func TestHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := newApp(&out, &errOut).Run([]string{"rstwatch", "--help"}); err != nil {
		t.Fatalf("failed to run --help: %v", err)
	}
	for _, want := range []string{"watch", "find failed TCP connections"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := newApp(&out, &errOut).Run([]string{"rstwatch", "watch", "--help"}); err != nil {
		t.Fatalf("failed to run watch --help: %v", err)
	}
	for _, want := range []string{"--interface", "--json", "--count", "--duration", "--port", "--host", "Examples", "CAP_NET_RAW"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("watch --help output lacks %q", want)
		}
	}
}

func TestDefaultCommand(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"rstwatch", "rstwatch watch"},
		{"rstwatch -i lo", "rstwatch watch -i lo"},
		{"rstwatch --json", "rstwatch watch --json"},
		{"rstwatch watch -c 1", "rstwatch watch -c 1"},
		{"rstwatch --help", "rstwatch --help"},
	} {
		if got := strings.Join(defaultCommand(strings.Fields(tt.in)), " "); got != tt.want {
			t.Errorf("defaultCommand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// run runs the binary and returns stdout, stderr and the exit code.
func run(t *testing.T, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("failed to run %v: %v", cmd.Args, err)
	}
	return out.String(), errOut.String(), code
}

// assertOneLineError checks the contract for bad input: exactly one line on
// stderr, no panic or stack trace, nothing on stdout, the given exit code.
func assertOneLineError(t *testing.T, stdout, stderr string, code, wantCode int, wantText string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("exit code %d, want %d (stderr %q)", code, wantCode, stderr)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "rstwatch: ") {
		t.Errorf("stderr is not one line starting with \"rstwatch: \": %q", stderr)
	}
	if !strings.Contains(stderr, wantText) {
		t.Errorf("stderr %q lacks %q", stderr, wantText)
	}
	if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
		t.Errorf("stderr has a stack trace: %q", stderr)
	}
	if stdout != "" {
		t.Errorf("stdout not empty: %q", stdout)
	}
}

func TestBadInput(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"port_zero", []string{"watch", "--port", "0"}, "invalid --port 0"},
		{"port_too_big", []string{"--port", "70000"}, "invalid --port 70000"},
		{"port_unknown_service", []string{"--port", "htp"}, "invalid value \"htp\" for flag -port: want a port number or a service name"},
		{"bare_duration", []string{"--duration", "8"}, "invalid value \"8\" for flag -duration: add a unit: 8s"},
		{"bare_interval", []string{"stats", "--interval", "2"}, "invalid value \"2\" for flag -interval: add a unit: 2s"},
		{"host_not_address", []string{"--host", "example"}, "invalid --host \"example\""},
		{"negative_count", []string{"-c", "-1"}, "invalid --count -1"},
		{"negative_duration", []string{"--duration", "-1s"}, "invalid --duration -1s"},
		{"bad_duration", []string{"--duration", "soon"}, "invalid value \"soon\" for flag -duration"},
		{"unknown_flag", []string{"--bogus"}, "flag provided but not defined: -bogus"},
		{"stray_argument", []string{"watch", "port", "80"}, "unexpected argument \"port\""},
		{"unknown_interface", []string{"-i", "no-such-if0"}, "unknown interface \"no-such-if0\" (available: "},
		{"unknown_command", []string{"wtach"}, `unknown command "wtach" (commands: watch`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(t, exec.Command(binary, tt.args...))
			assertOneLineError(t, stdout, stderr, code, exitUsage, tt.want)
		})
	}
}
