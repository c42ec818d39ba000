package render

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe/safetest"
	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// field digs a value out of a decoded JSON line: field(m, "sender",
// "process", "pid").
func field(m map[string]any, path ...string) any {
	var v any = m
	for _, k := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

func sampleEvent() (*sniff.Event, *explain.Verdict) {
	e := &sniff.Event{
		Time: time.Date(2026, 11, 21, 15, 13, 13, 476095123, time.UTC), Ifname: "lo", Ifindex: 1, Direction: sniff.Local,
		Segment: sniff.Segment{Family: sniff.IPv4, Src: netip.MustParseAddrPort("127.0.0.1:7211"), Dst: netip.MustParseAddrPort("127.0.0.1:41838"),
			Ack: 2154306035, Flags: sniff.FlagRST | sniff.FlagACK, TTL: 64},
	}
	v := &explain.Verdict{Cause: explain.Refused,
		Sender: explain.Sender{Local: explain.True, Listening: explain.False,
			LastListener: explain.LastListener{Known: true, PID: 311, Comm: "coll\x1b[31mector", UID: 1000, Until: time.Date(2026, 11, 21, 10, 54, 50, 0, time.UTC)}},
		Target: explain.Target{Local: explain.True, Process: explain.Proc{Known: true, Owned: true, PID: 4242, Comm: "agent\nx", UID: 1000, Inode: 1 << 40, State: "SYN-SENT", Seen: explain.Live}},
	}
	return e, v
}

func TestAppendText(t *testing.T) {
	e, v := sampleEvent()
	got := string(AppendText(nil, e, v, nil))
	want := `15:13:13.476095 lo local 127.0.0.1.7211 > 127.0.0.1.41838: Flags [R.], seq 0, ack 2154306035, win 0, length 0; ` +
		`refused: nothing listens on 127.0.0.1:7211 (coll\x1b[31mector pid 311 listened until 10:54:50); client agent\x0ax pid 4242`
	if got != want {
		t.Fatalf("AppendText:\n got %s\nwant %s", got, want)
	}
	safetest.AssertLine(t, []byte(got))
}

func TestAppendJSONContract(t *testing.T) {
	e, v := sampleEvent()
	for _, sampled := range []bool{false, true} {
		v.Sampled = sampled
		b := AppendJSON(nil, e, v, nil)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, b)
		}
		safetest.AssertLine(t, b)
		for _, k := range append(EventFieldsV1, "reason", "cause", "sender", "target") {
			if _, ok := m[k]; !ok {
				t.Errorf("JSON lacks %q", k)
			}
		}
		for path, want := range map[string]any{
			"cause": "refused", "sender.local": true, "sender.listening": false, "sender.process": nil,
			"sender.last_listener.pid": 311.0, "sender.last_listener.comm": "coll\x1b[31mector",
			"sender.last_listener.until": "2026-11-21T10:54:50.000000000Z",
			"target.local":               true, "target.process.pid": 4242.0, "target.process.comm": "agent\nx",
			"target.process.inode": float64(1 << 40), "target.process.state": "SYN-SENT", "target.process.seen": "live",
			"target.process.cgroup": nil, "target.process.container": nil, "time": "2026-11-21T15:13:13.476095123Z", "reason": nil,
		} {
			if got := field(m, strings.Split(path, ".")...); got != want {
				t.Errorf("%s = %#v, want %#v", path, got, want)
			}
		}
		if got, _ := m["sampled"].(bool); got != sampled {
			t.Errorf("sampled = %v, want %v", m["sampled"], sampled)
		}
	}
}

func TestRenderAllocs(t *testing.T) {
	e, v := sampleEvent()
	buf := make([]byte, 0, 2048)
	if n := testing.AllocsPerRun(1000, func() { buf = AppendJSON(buf[:0], e, v, nil) }); n != 0 {
		t.Errorf("AppendJSON allocates %v times per reset", n)
	}
	if n := testing.AllocsPerRun(1000, func() { buf = AppendText(buf[:0], e, v, nil) }); n != 0 {
		t.Errorf("AppendText allocates %v times per reset", n)
	}
	// With a namespace built per reset, as the watch loop does.
	inode, name := uint64(4026532000), "blue"
	if n := testing.AllocsPerRun(1000, func() {
		ns := &Namespace{Inode: inode, Name: name}
		buf = AppendJSON(buf[:0], e, v, ns)
		buf = AppendText(buf, e, v, ns)
	}); n != 0 {
		t.Errorf("rendering with a namespace allocates %v times per reset", n)
	}
}

func TestAppendJSONContainer(t *testing.T) {
	e, v := sampleEvent()
	id := strings.Repeat("ab12", 16)
	v.Target.Process.Cgroup = "/system.slice/docker-" + id + ".scope"
	var m map[string]any
	if err := json.Unmarshal(AppendJSON(nil, e, v, nil), &m); err != nil {
		t.Fatal(err)
	}
	if got := field(m, "target", "process", "container"); got != id {
		t.Errorf("target.process.container = %v, want %s", got, id)
	}
	if got := field(m, "target", "process", "cgroup"); got != v.Target.Process.Cgroup {
		t.Errorf("target.process.cgroup = %v", got)
	}
}

// TestEncap: the layers around the connection are "encap" in JSON (null
// when there are none) and come before the connection in the text line;
// src and dst stay the inner connection's.
func TestEncap(t *testing.T) {
	e, v := sampleEvent()
	var m map[string]any
	if err := json.Unmarshal(AppendJSON(nil, e, v, nil), &m); err != nil {
		t.Fatal(err)
	}
	if enc, ok := m["encap"]; !ok || enc != nil {
		t.Errorf("encap = %v (present %v), want null for a bare packet", enc, ok)
	}
	e.Encap.PushVLAN(0x8100, 10)
	e.Encap.Push(sniff.Layer{Type: sniff.EncapVXLAN, HasID: true, ID: 42, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")})
	line := AppendJSON(nil, e, v, nil)
	if !strings.Contains(string(line), `"encap":[{"type":"vlan","id":10},{"type":"vxlan","vni":42,"src":"10.0.0.1","dst":"10.0.0.2"}]`) {
		t.Errorf("JSON %s lacks the layers as the issue spells them", line)
	}
	if err := json.Unmarshal(line, &m); err != nil || m["src"] != "127.0.0.1" {
		t.Errorf("JSON %s: %v; src must stay the inner connection's", line, err)
	}
	text := string(AppendText(nil, e, v, nil))
	if !strings.Contains(text, " local vlan:10/vxlan:42[10.0.0.1>10.0.0.2] 127.0.0.1.7211 > 127.0.0.1.41838: ") {
		t.Errorf("text %q lacks the layers before the connection", text)
	}
}
