package render

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/rstwatch/rstwatch/proc"
)

const testContainer = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// fixedSockets is the input of the sockets rendering tests.
func fixedSockets() []SocketLine {
	ap := netip.MustParseAddrPort
	return []SocketLine{
		{Socket: proc.Socket{Local: ap("0.0.0.0:22"), Remote: ap("0.0.0.0:0"), State: proc.Listen, SendQ: 4096, Inode: 21510},
			Owner: proc.Process{PID: 612, Comm: "sshd", Cgroup: "/system.slice/ssh.service"}, Owned: true},
		{Socket: proc.Socket{Local: ap("[::ffff:127.0.0.1]:8080"), Remote: ap("[::ffff:127.0.0.1]:41000"), State: proc.Established, RecvQ: 17, UID: 1000, Inode: 998877},
			Owner: proc.Process{PID: 4242, Comm: "evil\x1b[2J\"name", Cgroup: "/system.slice/docker-" + testContainer + ".scope"}, Owned: true},
		{Socket: proc.Socket{Local: ap("[::1]:50000"), Remote: ap("[::1]:7301"), State: proc.TimeWait}},
	}
}

func TestSocketTable(t *testing.T) {
	got := string(AppendSocketTable(nil, fixedSockets()))
	want := "" +
		"State      Recv-Q  Send-Q  Local Address:Port       Peer Address:Port          UID   Inode  Process\n" +
		"LISTEN          0    4096  0.0.0.0:22               0.0.0.0:*                    0   21510  612/sshd\n" +
		"ESTAB          17       0  [::ffff:127.0.0.1]:8080  [::ffff:127.0.0.1]:41000  1000  998877  4242/evil\\x1b[2J\"name\n" +
		"TIME-WAIT       0       0  [::1]:50000              [::1]:7301                   0       0  -\n"
	if got != want {
		t.Errorf("appendSocketTable:\n%s\nwant:\n%s", got, want)
	}
	if got := string(AppendSocketTable(nil, nil)); !strings.HasPrefix(got, "State  Recv-Q  Send-Q  Local Address:Port") || strings.Count(got, "\n") != 1 {
		t.Errorf("empty table %q, want the header only", got)
	}
}

func TestSocketJSON(t *testing.T) {
	var got []string
	for _, l := range fixedSockets() {
		got = append(got, string(AppendSocketJSON(nil, &l)))
	}
	want := []string{
		`{"state":"LISTEN","local":"0.0.0.0","local_port":22,"peer":"0.0.0.0","peer_port":0,"recv_q":0,"send_q":4096,"uid":0,"inode":21510,"pid":612,"comm":"sshd","cgroup":"/system.slice/ssh.service","container":null}`,
		`{"state":"ESTAB","local":"::ffff:127.0.0.1","local_port":8080,"peer":"::ffff:127.0.0.1","peer_port":41000,"recv_q":17,"send_q":0,"uid":1000,"inode":998877,"pid":4242,"comm":"evil\u001b[2J\"name","cgroup":"/system.slice/docker-` + testContainer + `.scope","container":"` + testContainer + `"}`,
		`{"state":"TIME-WAIT","local":"::1","local_port":50000,"peer":"::1","peer_port":7301,"recv_q":0,"send_q":0,"uid":0,"inode":0,"pid":null,"comm":null,"cgroup":null,"container":null}`,
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n%s\nwant:\n%s", i, got[i], want[i])
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(got[i]), &v); err != nil {
			t.Errorf("line %d is not JSON: %v", i, err)
		}
		if len(v) != 13 {
			t.Errorf("line %d has %d fields, want 13", i, len(v))
		}
	}
}
