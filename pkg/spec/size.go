package spec

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var sizeRE = regexp.MustCompile(`^([0-9]+)([KMGT]?)(I?B)?$`)

// ParseSize reads a size such as "4G", "2048M", "512MiB", "1T", "4096B" or a
// plain number, and returns bytes. A plain number is in units of plainUnit
// bytes (1<<20 for memory, where a bare number means MiB).
func ParseSize(s string, plainUnit int64) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(s)))
	if m == nil || (m[2] == "" && m[3] == "IB") {
		return 0, fmt.Errorf("invalid size %q: give a whole number with an optional K, M, G or T suffix, e.g. 4G or 2048M", s)
	}
	unit := plainUnit
	switch {
	case m[2] == "K":
		unit = 1 << 10
	case m[2] == "M":
		unit = 1 << 20
	case m[2] == "G":
		unit = 1 << 30
	case m[2] == "T":
		unit = 1 << 40
	case m[3] == "B":
		unit = 1
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > (1<<62)/unit {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * unit, nil
}

// ParseMemoryMiB reads a memory size; a plain number means MiB.
func ParseMemoryMiB(s string) (int, error) {
	b, err := ParseSize(s, 1<<20)
	if err != nil {
		return 0, err
	}
	if b%(1<<20) != 0 {
		return 0, fmt.Errorf("memory %q is not a whole number of MiB", s)
	}
	mib := b >> 20
	if mib < MinMemoryMiB || mib > MaxMemoryMiB {
		return 0, fmt.Errorf("memory %q is out of range: give between %d MiB and %d MiB", s, MinMemoryMiB, MaxMemoryMiB)
	}
	return int(mib), nil
}
