package filter_test

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/rstwatch/rstwatch/filter"
)

// ancillary are the values a traced program reads with LoadExtension.
type ancillary struct {
	proto, hatype, pkttype, ifindex uint32
}

// trace runs prog on pkt as the kernel does (a load outside the packet
// returns 0) and returns the verdict and how many instructions ran. It
// implements the instructions the builder emits, and extensions from anc;
// x/net/bpf's VM counts nothing and cannot read extensions.
func trace(t testing.TB, prog []bpf.Instruction, pkt []byte, anc ancillary) (verdict uint32, executed int) {
	t.Helper()
	var (
		a, x uint32
		mem  [16]uint32
	)
	load := func(off uint32, size int) (uint32, bool) {
		if uint64(off)+uint64(size) > uint64(len(pkt)) {
			return 0, false
		}
		switch size {
		case 1:
			return uint32(pkt[off]), true
		case 2:
			return uint32(binary.BigEndian.Uint16(pkt[off:])), true
		}
		return binary.BigEndian.Uint32(pkt[off:]), true
	}
	for pc := 0; pc < len(prog); pc++ {
		executed++
		switch ins := prog[pc].(type) {
		case bpf.LoadAbsolute:
			v, ok := load(ins.Off, ins.Size)
			if !ok {
				return 0, executed
			}
			a = v
		case bpf.LoadIndirect:
			v, ok := load(x+ins.Off, ins.Size)
			if !ok {
				return 0, executed
			}
			a = v
		case bpf.LoadMemShift:
			v, ok := load(ins.Off, 1)
			if !ok {
				return 0, executed
			}
			x = (v & 0xf) * 4
		case bpf.LoadConstant:
			if ins.Dst == bpf.RegA {
				a = ins.Val
			} else {
				x = ins.Val
			}
		case bpf.LoadScratch:
			if ins.Dst == bpf.RegA {
				a = mem[ins.N]
			} else {
				x = mem[ins.N]
			}
		case bpf.StoreScratch:
			if ins.Src == bpf.RegA {
				mem[ins.N] = a
			} else {
				mem[ins.N] = x
			}
		case bpf.LoadExtension:
			switch ins.Num {
			case bpf.ExtProto:
				a = anc.proto
			case bpf.ExtLinkLayerType:
				a = anc.hatype
			case bpf.ExtType:
				a = anc.pkttype
			case bpf.ExtInterfaceIndex:
				a = anc.ifindex
			default:
				t.Fatalf("trace: extension %v", ins.Num)
			}
		case bpf.ALUOpConstant:
			a = alu(t, ins.Op, a, ins.Val)
		case bpf.ALUOpX:
			a = alu(t, ins.Op, a, x)
		case bpf.TAX:
			x = a
		case bpf.TXA:
			a = x
		case bpf.Jump:
			pc += int(ins.Skip)
		case bpf.JumpIf:
			var ok bool
			switch ins.Cond {
			case bpf.JumpEqual:
				ok = a == ins.Val
			case bpf.JumpGreaterThan:
				ok = a > ins.Val
			case bpf.JumpGreaterOrEqual:
				ok = a >= ins.Val
			case bpf.JumpBitsSet:
				ok = a&ins.Val != 0
			default:
				t.Fatalf("trace: condition %v", ins.Cond)
			}
			if ok {
				pc += int(ins.SkipTrue)
			} else {
				pc += int(ins.SkipFalse)
			}
		case bpf.RetConstant:
			return ins.Val, executed
		default:
			t.Fatalf("trace: instruction %T %v", ins, ins)
		}
	}
	t.Fatalf("trace: fell off the end")
	return 0, 0
}

func alu(t testing.TB, op bpf.ALUOp, a, v uint32) uint32 {
	switch op {
	case bpf.ALUOpAdd:
		return a + v
	case bpf.ALUOpAnd:
		return a & v
	case bpf.ALUOpShiftLeft:
		return a << v
	case bpf.ALUOpShiftRight:
		return a >> v
	}
	t.Fatalf("trace: ALU op %v", op)
	return 0
}

// bulkPackets are the traffic a capture host sees most of, none of which
// the program accepts: the cost of rejecting them is what the filter costs.
func bulkPackets() []struct {
	name string
	pkt  []byte
	anc  ancillary
} {
	eth := ancillary{proto: 0x0800, hatype: 1}
	eth6 := ancillary{proto: 0x86dd, hatype: 1}
	return []struct {
		name string
		pkt  []byte
		anc  ancillary
	}{
		{"ipv4_tcp_ack", ipv4Packet(src4, dst4, nhTCP, nil, tcpHeader(443, 40000, flagACK, 12)), eth},
		{"ipv6_tcp_ack", ipv6Packet(src6, dst6, nil, nhTCP, tcpHeader(443, 40000, flagACK, 12)), eth6},
		{"ipv4_udp", ipv4Packet(src4, dst4, nhUDP, nil, make([]byte, 100)), eth},
		{"ipv6_udp", ipv6Packet(src6, dst6, nil, nhUDP, make([]byte, 100)), eth6},
		{"arp", make([]byte, 28), ancillary{proto: 0x0806, hatype: 1}},
	}
}

// TestBulkPathCost reports how many instructions the default kernel
// program runs to reject bulk traffic, and holds them to the numbers
// measured before tunnels were added to the program: a tunnel costs
// nothing to traffic that is not in one (only non-TCP packets look
// further).
func TestBulkPathCost(t *testing.T) {
	prog, err := filter.Kernel(filter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Measured before the tunnel section existed: 19, 14, 11, 17 and 4.
	// TCP and non-IP traffic pays nothing for it; UDP pays the port
	// check.
	want := map[string]int{
		"ipv4_tcp_ack": 19, "ipv6_tcp_ack": 14, "ipv4_udp": 21, "ipv6_udp": 22, "arp": 4,
	}
	for _, p := range bulkPackets() {
		v, n := trace(t, prog, p.pkt, p.anc)
		if v != 0 {
			t.Errorf("%s: accepted", p.name)
		}
		t.Logf("%-14s %d instructions", p.name, n)
		if w := want[p.name]; n > w {
			t.Errorf("%s: %d instructions, want at most %d", p.name, n, w)
		}
	}
}

// TestTraceMatchesVM checks the tracer against x/net/bpf's VM on every VM
// table packet and option set, so that its counts are of the real program.
func TestTraceMatchesVM(t *testing.T) {
	for _, s := range optionSets {
		prog, err := filter.Core(s.opts)
		if err != nil {
			t.Fatal(err)
		}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range vmCases {
			pkt := tt.packet()
			want, err := vm.Run(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := trace(t, prog, pkt, ancillary{}); int(got) != want {
				t.Errorf("%s/%s: trace says %d, VM %d", s.name, tt.name, got, want)
			}
		}
	}
}
