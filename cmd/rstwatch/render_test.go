package main

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rstwatch/rstwatch/sniff"
	"github.com/rstwatch/rstwatch/sniff/explain"
)

// schemaV1 are the JSON fields issue 1/6 fixed; later fields may be added.
var schemaV1 = []string{"time", "ifname", "ifindex", "direction", "family", "src", "src_port", "dst", "dst_port",
	"flags", "seq", "ack", "window", "payload_len", "ttl", "tos"}

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

// hostile are process names a local user can choose (comm is theirs to set).
var hostile = []string{
	"nginx",
	"evil\x1b[2J\x1b[31mred",
	"tab\there\nnewline\rcr",
	"quote\"back\\slash",
	"del\x7fc1\u0085",
	"bidi\u202eoverride\u200bzero",
	"line\u2028sep\u2029",
	"bad\xff\xfeutf8",
	"",
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range hostile {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: not JSON: %v", s, b, err)
		}
		if want := perByteValid(s); got != want {
			t.Errorf("appendJSONString(%q) decodes to %q, want %q", s, got, want)
		}
		assertTerminalSafe(t, b)
	}
}

// perByteValid replaces each byte of invalid UTF-8 with U+FFFD, as
// encoding/json does.
func perByteValid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError for an invalid byte
		i += size
	}
	return b.String()
}

func TestAppendSafe(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"nginx", "nginx"},
		{"evil\x1b[2Jred", `evil\x1b[2Jred`},
		{"a\\b", `a\\b`},
		{"bidi\u202eo", `bidi\u202eo`},
		{"bad\xffx", `bad\xffx`},
		{"café", "café"},
	} {
		if got := string(appendSafe(nil, tt.in)); got != tt.want {
			t.Errorf("appendSafe(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, s := range hostile {
		assertTerminalSafe(t, appendSafe(nil, s))
	}
}

// assertTerminalSafe fails on bytes a terminal would act on: C0 and C1
// controls, DEL, and invisible formatting runes.
func assertTerminalSafe(t *testing.T, b []byte) {
	t.Helper()
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0x202e || r == 0x200b || r == 0x2028 || r == 0x2029 || r == utf8.RuneError && size == 1 {
			t.Fatalf("output %q has unsafe rune %U at %d", b, r, i)
		}
		i += size
	}
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
	got := string(appendText(nil, e, v, nil))
	want := `15:13:13.476095 lo local 127.0.0.1.7211 > 127.0.0.1.41838: Flags [R.], seq 0, ack 2154306035, win 0, length 0; ` +
		`refused: nothing listens on 127.0.0.1:7211 (coll\x1b[31mector pid 311 listened until 10:54:50); client agent\x0ax pid 4242`
	if got != want {
		t.Fatalf("appendText:\n got %s\nwant %s", got, want)
	}
	assertTerminalSafe(t, []byte(got))
}

func TestAppendJSONContract(t *testing.T) {
	e, v := sampleEvent()
	for _, sampled := range []bool{false, true} {
		v.Sampled = sampled
		b := appendJSON(nil, e, v, nil)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, b)
		}
		assertTerminalSafe(t, b)
		for _, k := range append(schemaV1, "reason", "cause", "sender", "target") {
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
	if n := testing.AllocsPerRun(1000, func() { buf = appendJSON(buf[:0], e, v, nil) }); n != 0 {
		t.Errorf("appendJSON allocates %v times per reset", n)
	}
	if n := testing.AllocsPerRun(1000, func() { buf = appendText(buf[:0], e, v, nil) }); n != 0 {
		t.Errorf("appendText allocates %v times per reset", n)
	}
}

// FuzzAppendJSONString checks that any string becomes valid JSON that
// decodes back to it (with invalid UTF-8 replaced) and is terminal-safe.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("not JSON: %v: %q", err, b)
		}
		if want := perByteValid(s); got != want {
			t.Fatalf("decoded %q from %q", got, s)
		}
		assertTerminalSafe(t, b)
		assertTerminalSafe(t, appendSafe(nil, s))
	})
}

func TestAppendJSONContainer(t *testing.T) {
	e, v := sampleEvent()
	id := strings.Repeat("ab12", 16)
	v.Target.Process.Cgroup = "/system.slice/docker-" + id + ".scope"
	var m map[string]any
	if err := json.Unmarshal(appendJSON(nil, e, v, nil), &m); err != nil {
		t.Fatal(err)
	}
	if got := field(m, "target", "process", "container"); got != id {
		t.Errorf("target.process.container = %v, want %s", got, id)
	}
	if got := field(m, "target", "process", "cgroup"); got != v.Target.Process.Cgroup {
		t.Errorf("target.process.cgroup = %v", got)
	}
}
