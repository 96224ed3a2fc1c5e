package qemu

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
)

// A KVM guest that prints nothing may be hung (nested KVM here stops right
// after the kernel's real-mode setup) or merely quiet or slow (a loaded
// host, console=null). Only the first says anything about KVM; the
// instruction pointers tell them apart: a running guest moves them.

var ripRE = regexp.MustCompile(`(?m)^RIP=([0-9a-f]{1,16})\b`)

// maxRegistersOutput bounds what is parsed of `info registers -a`.
const maxRegistersOutput = 1 << 20

// ParseInstructionPointers returns each vCPU's RIP from the text of HMP's
// `info registers -a`.
func ParseInstructionPointers(info string) []uint64 {
	if len(info) > maxRegistersOutput {
		info = info[:maxRegistersOutput]
	}
	var out []uint64
	for _, m := range ripRE.FindAllStringSubmatch(info, -1) {
		if v, err := strconv.ParseUint(m[1], 16, 64); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// InstructionPointers asks QEMU for every vCPU's instruction pointer.
func InstructionPointers(ctx context.Context, q *QMP) ([]uint64, error) {
	raw, err := q.Execute(ctx, "human-monitor-command", map[string]string{"command-line": "info registers -a"})
	if err != nil {
		return nil, err
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		return nil, err
	}
	return ParseInstructionPointers(text), nil
}

// VCPUsProgress reports whether any vCPU's instruction pointer changed
// between samples (each sample one RIP per vCPU). Samples that could not
// be read, or that disagree on the number of vCPUs, are no evidence.
func VCPUsProgress(samples [][]uint64) bool {
	var first []uint64
	for _, s := range samples {
		if len(s) == 0 {
			continue
		}
		if first == nil {
			first = s
			continue
		}
		if len(s) != len(first) {
			continue
		}
		for i := range s {
			if s[i] != first[i] {
				return true
			}
		}
	}
	return false
}
