package filter

import (
	"errors"
	"fmt"

	"golang.org/x/net/bpf"
)

// maxInstructions is BPF_MAXINSNS, the longest classic program the Linux
// kernel accepts (include/uapi/linux/bpf_common.h).
const maxInstructions = 4096

// maxCondSkip is the largest skip a conditional jump can encode (jt and jf
// are 8-bit fields of struct sock_filter).
const maxCondSkip = 255

// errBuild is wrapped by every layout error the builder reports.
var errBuild = errors.New("filter: cannot lay out program")

// A label names a position in a program under construction. Labels only
// ever point forward: classic BPF has no backward jumps, which is what
// guarantees termination.
type label int

// next is the pseudo-label "the following instruction" (fall through).
const next label = -1

// opKind tells how an op is laid out.
type opKind uint8

const (
	opPlain opKind = iota // any non-jump instruction
	opCond                // conditional jump with label targets
	opJump                // unconditional ja to a label
)

// op is one instruction in the builder, with its jump targets still symbolic.
type op struct {
	kind   opKind
	ins    bpf.Instruction // opPlain only
	cond   bpf.JumpTest    // opCond only, always a positive form
	val    uint32          // opCond only
	jt, jf label           // opCond: targets; opJump: jt
}

// builder is a tiny assembler for classic BPF with labels. Conditional jumps
// whose target is more than 255 instructions ahead get a trampoline: a ja
// placed right after the conditional jump (ja has a 32-bit offset). Errors
// are sticky and reported by program.
type builder struct {
	ops    []op
	labels []int // op index each label marks, -1 until marked
	err    error
}

// label returns a fresh, unmarked label.
func (b *builder) label() label {
	b.labels = append(b.labels, -1)
	return label(len(b.labels) - 1)
}

// mark binds l to the position of the next emitted instruction.
func (b *builder) mark(l label) {
	if l < 0 || int(l) >= len(b.labels) {
		b.fail("mark of unknown label %d", l)
		return
	}
	if b.labels[l] >= 0 {
		b.fail("label %d marked twice", l)
		return
	}
	b.labels[l] = len(b.ops)
}

// emit appends a non-jump instruction. Jumps must go through jumpIf and jump
// so that their offsets are computed from labels.
func (b *builder) emit(ins bpf.Instruction) {
	switch ins.(type) {
	case bpf.Jump, bpf.JumpIf, bpf.JumpIfX:
		b.fail("emit of raw jump %v: use jumpIf or jump", ins)
		return
	}
	b.ops = append(b.ops, op{kind: opPlain, ins: ins})
}

// jumpIf appends "if A <cond> val goto jt else goto jf". Negative conditions
// are rewritten to their positive form with the targets swapped, so that the
// String() of the result shows both targets (x/net/bpf prints only the true
// skip of jneq, jlt and jle).
func (b *builder) jumpIf(cond bpf.JumpTest, val uint32, jt, jf label) {
	switch cond {
	case bpf.JumpNotEqual:
		cond, jt, jf = bpf.JumpEqual, jf, jt
	case bpf.JumpLessThan:
		cond, jt, jf = bpf.JumpGreaterOrEqual, jf, jt
	case bpf.JumpLessOrEqual:
		cond, jt, jf = bpf.JumpGreaterThan, jf, jt
	case bpf.JumpBitsNotSet:
		cond, jt, jf = bpf.JumpBitsSet, jf, jt
	case bpf.JumpEqual, bpf.JumpGreaterThan, bpf.JumpGreaterOrEqual, bpf.JumpBitsSet:
	default:
		b.fail("unknown jump condition %v", cond)
		return
	}
	b.ops = append(b.ops, op{kind: opCond, cond: cond, val: val, jt: jt, jf: jf})
}

// jump appends an unconditional jump (ja) to l.
func (b *builder) jump(l label) {
	b.ops = append(b.ops, op{kind: opJump, jt: l})
}

func (b *builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("%w: "+format, append([]any{errBuild}, args...)...)
	}
}

// target returns the op index that l, used by the op at index i, refers to,
// checking that it is marked, forward and inside the program.
func (b *builder) target(i int, l label) (int, error) {
	if l == next {
		return i + 1, nil
	}
	if l < 0 || int(l) >= len(b.labels) {
		return 0, fmt.Errorf("%w: instruction %d jumps to unknown label %d", errBuild, i, l)
	}
	t := b.labels[l]
	switch {
	case t < 0:
		return 0, fmt.Errorf("%w: instruction %d jumps to unmarked label %d", errBuild, i, l)
	case t <= i:
		return 0, fmt.Errorf("%w: instruction %d jumps backwards to label %d", errBuild, i, l)
	case t >= len(b.ops):
		return 0, fmt.Errorf("%w: instruction %d jumps past the end of the program (label %d)", errBuild, i, l)
	}
	return t, nil
}

// program resolves all labels and returns the instructions.
func (b *builder) program() ([]bpf.Instruction, error) {
	if b.err != nil {
		return nil, b.err
	}
	n := len(b.ops)
	if n == 0 {
		return nil, fmt.Errorf("%w: empty program", errBuild)
	}
	// Resolve labels to op indexes once; offsets depend on layout below.
	tt := make([]int, n) // op index of the true (or ja) target
	tf := make([]int, n) // op index of the false target
	for i, o := range b.ops {
		var err error
		switch o.kind {
		case opCond:
			if tt[i], err = b.target(i, o.jt); err == nil {
				tf[i], err = b.target(i, o.jf)
			}
		case opJump:
			tt[i], err = b.target(i, o.jt)
		}
		if err != nil {
			return nil, err
		}
	}

	// Relaxation: start with every conditional branch short; give a branch a
	// trampoline when its target is too far; repeat until nothing changes.
	// Trampolines are only ever added, so this terminates (at most 2n
	// rounds, in practice one or two).
	const farT, farF = 1, 2
	far := make([]uint8, n)
	pos := make([]int, n+1) // pos[i] = index of op i's instruction in the output
	for {
		for i := range b.ops {
			size := 1
			if far[i]&farT != 0 {
				size++
			}
			if far[i]&farF != 0 {
				size++
			}
			pos[i+1] = pos[i] + size
		}
		changed := false
		for i, o := range b.ops {
			if o.kind != opCond {
				continue
			}
			if far[i]&farT == 0 && pos[tt[i]]-pos[i]-1 > maxCondSkip {
				far[i] |= farT
				changed = true
			}
			if far[i]&farF == 0 && pos[tf[i]]-pos[i]-1 > maxCondSkip {
				far[i] |= farF
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	if pos[n] > maxInstructions {
		return nil, fmt.Errorf("%w: %d instructions, the kernel accepts at most %d", errBuild, pos[n], maxInstructions)
	}

	out := make([]bpf.Instruction, 0, pos[n])
	for i, o := range b.ops {
		p := pos[i]
		switch o.kind {
		case opPlain:
			out = append(out, o.ins)
		case opJump:
			out = append(out, bpf.Jump{Skip: uint32(pos[tt[i]] - p - 1)})
		case opCond:
			// Trampolines follow the conditional jump: first the one for
			// the true branch, then the one for the false branch.
			var tramps []int // output positions of the far targets, in order
			skipT, skipF := pos[tt[i]]-p-1, pos[tf[i]]-p-1
			slot := 0
			if far[i]&farT != 0 {
				skipT = slot
				tramps = append(tramps, pos[tt[i]])
				slot++
			}
			if far[i]&farF != 0 {
				skipF = slot
				tramps = append(tramps, pos[tf[i]])
			}
			out = append(out, bpf.JumpIf{Cond: o.cond, Val: o.val, SkipTrue: uint8(skipT), SkipFalse: uint8(skipF)})
			for _, t := range tramps {
				out = append(out, bpf.Jump{Skip: uint32(t - len(out) - 1)})
			}
		}
	}
	return out, nil
}
