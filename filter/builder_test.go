package filter

import (
	"errors"
	"testing"

	"golang.org/x/net/bpf"
)

// TestBuilderTrampolines lays out conditional jumps whose targets are too
// far for their 8-bit skips and checks that ja trampolines carry them.
func TestBuilderTrampolines(t *testing.T) {
	t.Parallel()
	const filler = 300 // > 255
	var b builder
	one, two, three := b.label(), b.label(), b.label()
	b.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
	b.jumpIf(bpf.JumpEqual, 1, one, next)     // far true branch
	b.jumpIf(bpf.JumpNotEqual, 2, three, two) // far true and false branches (after swap)
	for range filler {
		b.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
	}
	b.emit(bpf.RetConstant{Val: 9}) // never reached: A is 2 or something else
	b.mark(one)
	b.emit(bpf.RetConstant{Val: 1})
	b.mark(two)
	b.emit(bpf.RetConstant{Val: 2})
	b.mark(three)
	b.emit(bpf.RetConstant{Val: 3})

	prog, err := b.program()
	if err != nil {
		t.Fatalf("failed to lay out program: %v", err)
	}
	if want, got := 1+2+3+filler+4, len(prog); got != want {
		t.Fatalf("unexpected length with three trampolines (-want +got):\n-%d\n+%d", want, got)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("failed to load program into VM: %v", err)
	}
	for _, tt := range []struct {
		in   byte
		want int
	}{{1, 1}, {2, 2}, {0, 3}, {7, 3}} {
		got, err := vm.Run([]byte{tt.in})
		if err != nil {
			t.Fatalf("failed to run program: %v", err)
		}
		if got != tt.want {
			t.Errorf("input %d: unexpected result (-want +got):\n-%d\n+%d", tt.in, tt.want, got)
		}
	}
}

// TestBuilderNegativeConditions checks that negative conditions become
// positive ones with swapped targets, so String() shows both skips.
func TestBuilderNegativeConditions(t *testing.T) {
	t.Parallel()
	var b builder
	l := b.label()
	b.jumpIf(bpf.JumpNotEqual, 1, l, next)
	b.jumpIf(bpf.JumpLessThan, 2, l, next)
	b.jumpIf(bpf.JumpLessOrEqual, 3, l, next)
	b.jumpIf(bpf.JumpBitsNotSet, 4, l, next)
	b.emit(bpf.RetConstant{Val: 1})
	b.mark(l)
	b.emit(bpf.RetConstant{Val: 0})
	prog, err := b.program()
	if err != nil {
		t.Fatalf("failed to lay out program: %v", err)
	}
	// x/net/bpf prints a positive condition whose true skip is 0 in its
	// negative form.
	want := []string{"jneq #1,4", "jlt #2,3", "jle #3,2", "jset #4,0,1", "ret #1", "ret #0"}
	for i, ins := range prog {
		if got := ins.(interface{ String() string }).String(); got != want[i] {
			t.Errorf("instruction %d (-want +got):\n-%s\n+%s", i, want[i], got)
		}
		j, ok := ins.(bpf.JumpIf)
		if !ok {
			continue
		}
		switch j.Cond {
		case bpf.JumpEqual, bpf.JumpGreaterThan, bpf.JumpGreaterOrEqual, bpf.JumpBitsSet:
		default:
			t.Errorf("instruction %d: negative condition %v left in program", i, j.Cond)
		}
	}
}

func TestBuilderErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		build func(b *builder)
	}{
		{"empty", func(b *builder) {}},
		{"backward", func(b *builder) {
			l := b.label()
			b.mark(l)
			b.emit(bpf.TAX{})
			b.jump(l)
			b.emit(bpf.RetConstant{})
		}},
		{"to_self", func(b *builder) {
			l := b.label()
			b.mark(l)
			b.jumpIf(bpf.JumpEqual, 0, l, next)
			b.emit(bpf.RetConstant{})
		}},
		{"unmarked", func(b *builder) {
			b.jump(b.label())
			b.emit(bpf.RetConstant{})
		}},
		{"past_end", func(b *builder) {
			l := b.label()
			b.jump(l)
			b.emit(bpf.RetConstant{})
			b.mark(l)
		}},
		{"marked_twice", func(b *builder) {
			l := b.label()
			b.mark(l)
			b.mark(l)
			b.emit(bpf.RetConstant{})
		}},
		{"raw_jump", func(b *builder) {
			b.emit(bpf.Jump{Skip: 0})
			b.emit(bpf.RetConstant{})
		}},
		{"too_long", func(b *builder) {
			for range maxInstructions {
				b.emit(bpf.TAX{})
			}
			b.emit(bpf.RetConstant{})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b builder
			tt.build(&b)
			_, err := b.program()
			if !errors.Is(err, errBuild) {
				t.Fatalf("unexpected error (-want +got):\n-%v\n+%v", errBuild, err)
			}
		})
	}
}
