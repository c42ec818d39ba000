package capfile

import (
	"strings"
	"testing"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe/safetest"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// TestHostileComment: the process names a pcapng comment carries are
// escaped like every other output (tshark and Wireshark print comments).
func TestHostileComment(t *testing.T) {
	for _, name := range safetest.Hostile {
		v := explain.Verdict{Cause: explain.Abort}
		v.Sender.Process = explain.Proc{Owned: true, PID: 42, Comm: name}
		v.Target.Process = explain.Proc{Owned: true, PID: 43, Comm: name}
		c := verdictComment(&v)
		safetest.AssertLine(t, []byte(c))
		if !strings.HasPrefix(c, "rstwatch: cause=abort sender=") || !strings.Contains(c, "/42 target=") {
			t.Errorf("comment %q lacks the cause and the pids", c)
		}
	}
}
