package snifftest

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// CorpusEnv names the environment variable that points at the external
// capture corpus (../shared/corpus beside the checkout; .ci/run sets it).
const CorpusEnv = "RSTWATCH_CORPUS"

// CorpusDir returns the external capture corpus: $RSTWATCH_CORPUS, or else
// shared/corpus beside the module's root directory. It skips the test when
// the corpus is absent, but fails it when $RSTWATCH_CORPUS names a missing
// directory, so that CI cannot silently skip the conformance tests.
func CorpusDir(tb testing.TB) string {
	tb.Helper()
	if dir := os.Getenv(CorpusEnv); dir != "" {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			tb.Fatalf("$%s=%s is not a directory: %v", CorpusEnv, dir, err)
		}
		return dir
	}
	root, err := moduleRoot()
	if err != nil {
		tb.Skipf("skipping, capture corpus not found (set $%s): %v", CorpusEnv, err)
	}
	dir := filepath.Join(root, "..", "shared", "corpus")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		tb.Skipf("skipping, capture corpus not found at %s (set $%s)", dir, CorpusEnv)
	}
	return dir
}

// CorpusFiles returns the pcap and pcapng files under dir, as sorted paths
// relative to dir ("tcpdump/tcp_rst_data.pcap").
func CorpusFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".pcap" || ext == ".pcapng" || ext == ".cap") {
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("failed to list capture corpus %s: %v", dir, err)
	}
	sort.Strings(files)
	return files
}

// moduleRoot returns the nearest directory at or above the working
// directory (a test's package directory) that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
