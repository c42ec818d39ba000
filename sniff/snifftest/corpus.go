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

// CorpusRequired reports whether a missing corpus fails the tests that read
// it instead of skipping them: when $RSTWATCH_CORPUS is set, or $CI is
// "true" (as CI services set it). A developer without the corpus, and
// without these variables, gets clean skips.
func CorpusRequired() bool {
	return os.Getenv(CorpusEnv) != "" || os.Getenv("CI") == "true"
}

// SkipCorpus skips a test that cannot read the corpus, or fails it when
// CorpusRequired, so that CI cannot pass with a corpus test skipped.
func SkipCorpus(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if CorpusRequired() {
		tb.Fatalf("the capture corpus is required ($%s set or $CI=true): "+format, append([]any{CorpusEnv}, args...)...)
	}
	tb.Skipf("skipping, "+format, args...)
}

// CorpusDir returns the external capture corpus: $RSTWATCH_CORPUS, or else
// shared/corpus beside the module's root directory. It skips the test when
// the corpus is absent, but fails it when $RSTWATCH_CORPUS names a missing
// directory or $CI is "true" (SkipCorpus), so that CI cannot silently skip
// the conformance tests.
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
		SkipCorpus(tb, "capture corpus not found (set $%s): %v", CorpusEnv, err)
		return ""
	}
	dir := filepath.Join(root, "..", "shared", "corpus")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		SkipCorpus(tb, "capture corpus not found at %s (set $%s)", dir, CorpusEnv)
		return ""
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
