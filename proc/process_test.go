package proc

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCommAndCgroup(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "42")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(filepath.Join(dir, "comm"), []byte("ev\u202eil\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte("0::/\n4:memory:/docker/"+id+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	if comm, err := fs.Comm(42); err != nil || comm != "ev\u202eil" {
		t.Errorf("Comm(42) = %q, %v; want the name unescaped without its newline", comm, err)
	}
	cg, err := fs.Cgroup(42)
	if err != nil || cg != "/docker/"+id {
		t.Errorf("Cgroup(42) = %q, %v; want the v1 path on a hybrid host", cg, err)
	}
	if got := ContainerID(cg); got != id {
		t.Errorf("ContainerID(%q) = %q, want %q", cg, got, id)
	}
	if _, err := fs.Comm(43); !os.IsNotExist(err) {
		t.Errorf("Comm of a missing process: err = %v, want not-exist", err)
	}
}
