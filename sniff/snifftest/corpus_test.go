package snifftest

import (
	"fmt"
	"testing"
)

// fakeTB records how a helper ended a test; Fatalf and Skipf stop the
// helper, as the real ones do, by panicking out of it.
type fakeTB struct {
	testing.TB
	ended string // "fatal" or "skip"
}

type stop struct{}

func (f *fakeTB) Helper()                    {}
func (f *fakeTB) Fatalf(string, ...any)      { f.ended = "fatal"; panic(stop{}) }
func (f *fakeTB) Skipf(string, ...any)       { f.ended = "skip"; panic(stop{}) }
func (f *fakeTB) Logf(string, ...any)        {}
func (f *fakeTB) Errorf(fm string, a ...any) { panic(fmt.Sprintf(fm, a...)) }

func run(tb testing.TB, fn func(testing.TB)) string {
	f := &fakeTB{TB: tb}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(stop); !ok {
					panic(r)
				}
			}
		}()
		fn(f)
	}()
	return f.ended
}

// TestCorpusDirMissing checks that a missing corpus skips the test on a
// developer's machine but fails it in CI ($CI=true or $RSTWATCH_CORPUS set),
// so that CI cannot pass with the corpus tests skipped.
func TestCorpusDirMissing(t *testing.T) {
	t.Chdir(t.TempDir()) // no go.mod above, so no shared/corpus beside it
	missing := t.TempDir() + "/nothing"
	for _, tt := range []struct {
		ci, env string
		want    string
	}{
		{"", "", "skip"},
		{"false", "", "skip"},
		{"true", "", "fatal"},
		{"", missing, "fatal"},
	} {
		t.Run(fmt.Sprintf("CI=%q,env=%q", tt.ci, tt.env), func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			t.Setenv(CorpusEnv, tt.env)
			if got := run(t, func(tb testing.TB) { CorpusDir(tb) }); got != tt.want {
				t.Errorf("CorpusDir ended the test with %q, want %q", got, tt.want)
			}
			if tt.env == "" {
				if got := run(t, func(tb testing.TB) { SkipCorpus(tb, "no %s", "files") }); got != tt.want {
					t.Errorf("SkipCorpus ended the test with %q, want %q", got, tt.want)
				}
			}
		})
	}
}
