package qemu

import (
	"reflect"
	"testing"
)

const registersTwoCPUs = `CPU#0
RAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000
RSI=0000000000000000 RDI=0000000000000000 RBP=0000000000000000 RSP=ffffffff82c03e98
R8 =0000000000000000 R9 =0000000000000000 R10=0000000000000000 R11=0000000000000000
RIP=ffffffff81e2b94e RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1
CPU#1
RAX=0000000000000000 RBX=0000000000000001 RCX=0000000000000000 RDX=0000000000000000
RIP=000000000000fff0 RFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0
`

func TestParseInstructionPointers(t *testing.T) {
	if got := ParseInstructionPointers(registersTwoCPUs); !reflect.DeepEqual(got, []uint64{0xffffffff81e2b94e, 0xfff0}) {
		t.Fatalf("got %x", got)
	}
	// Guest-controlled text never reaches here, but garbage must not either.
	for _, in := range []string{"", "RIP=", "RIP=zz", "xRIP=12", "RIP=123456789012345678"} {
		if got := ParseInstructionPointers(in); len(got) != 0 {
			t.Errorf("%q: %x", in, got)
		}
	}
}

func TestVCPUsProgress(t *testing.T) {
	for _, c := range []struct {
		name    string
		samples [][]uint64
		want    bool
	}{
		{"a silent guest that runs", [][]uint64{{1, 2}, {1, 2}, {5, 2}}, true},
		{"hung: nothing moves", [][]uint64{{1, 2}, {1, 2}, {1, 2}}, false},
		{"no samples", nil, false},
		{"one sample", [][]uint64{{1}}, false},
		{"unreadable samples are no evidence", [][]uint64{nil, {1}, nil, {1}}, false},
		{"vCPU count differs", [][]uint64{{1}, {1, 2}}, false},
	} {
		if got := VCPUsProgress(c.samples); got != c.want {
			t.Errorf("%s: got %v", c.name, got)
		}
	}
}
