package sniff

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// linkMsg encodes an RTM_NEWLINK or RTM_DELLINK notification the way the
// kernel does: nlmsghdr, ifinfomsg, IFLA_IFNAME (NUL-terminated), padded.
func linkMsg(ev linkEvent) []byte {
	ne := binary.NativeEndian
	name := append([]byte(ev.name), 0)
	attr := ne.AppendUint16(nil, uint16(4+len(name)))
	attr = ne.AppendUint16(attr, unix.IFLA_IFNAME)
	attr = append(attr, name...)
	for len(attr)%4 != 0 {
		attr = append(attr, 0)
	}
	typ := uint16(unix.RTM_NEWLINK)
	if ev.deleted {
		typ = unix.RTM_DELLINK
	}
	b := ne.AppendUint32(nil, uint32(unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg+len(attr)))
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, 0)
	b = ne.AppendUint32(b, 0) // seq
	b = ne.AppendUint32(b, 0) // pid
	b = append(b, unix.AF_UNSPEC, 0)
	b = ne.AppendUint16(b, unix.ARPHRD_ETHER)
	b = ne.AppendUint32(b, uint32(ev.index))
	b = ne.AppendUint32(b, unix.IFF_UP) // flags
	b = ne.AppendUint32(b, 0)           // change
	return append(b, attr...)
}

func TestParseLinkEvents(t *testing.T) {
	want := []linkEvent{{index: 7, name: "rel-y1"}, {index: 7, name: "rel-y1", deleted: true}, {index: 12, name: "a-fifteen-chars"}}
	var b []byte
	for _, ev := range want {
		b = append(b, linkMsg(ev)...)
	}
	got, err := parseLinkEvents(b)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseLinkEvents = %+v, %v; want %+v", got, err, want)
	}
	if _, err := parseLinkEvents(b[:len(b)-3]); err == nil {
		t.Error("a cut datagram parsed without error")
	}
}

// FuzzParseLinkEvents checks that rtnetlink datagrams never make the parser
// panic, that every event it returns is usable (a positive index, a name
// without NUL), and that events it returns encode and parse back the same.
func FuzzParseLinkEvents(f *testing.F) {
	f.Add(linkMsg(linkEvent{index: 7, name: "rel-y1"}))
	f.Add(append(linkMsg(linkEvent{index: 7, name: "rel-y1", deleted: true}), linkMsg(linkEvent{index: 9, name: "eth0"})...))
	f.Add(linkMsg(linkEvent{index: 3, name: ""}))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := parseLinkEvents(b)
		if err != nil {
			return
		}
		for _, ev := range evs {
			if ev.index <= 0 || ev.name == "" || strings.IndexByte(ev.name, 0) >= 0 {
				t.Fatalf("unusable event %+v", ev)
			}
			again, err := parseLinkEvents(linkMsg(ev))
			if err != nil || len(again) != 1 || again[0] != ev {
				t.Fatalf("roundtrip of %+v = %+v, %v", ev, again, err)
			}
		}
	})
}
