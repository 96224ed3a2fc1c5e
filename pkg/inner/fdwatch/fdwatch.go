// Package fdwatch watches a process's open file descriptors against its
// limit. virtiofsd keeps one descriptor per file the guest has looked up
// and still caches; at the limit the guest's file operations fail, and the
// guest cannot even load libraries any more. The watch turns that silent
// break into a warning well before it, and a plain message when it comes.
package fdwatch

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Sample is one look at a process.
type Sample struct {
	Open  int
	Limit uint64 // the soft RLIMIT_NOFILE; 0 when unlimited or unknown
}

// Level is how close a sample is to the limit.
type Level int

const (
	Fine Level = iota
	// Reclaim: time to ask the guest to give cached inodes back.
	Reclaim
	High
	Exhausted
)

// Thresholds.
const (
	// ReclaimPercent of the limit in use makes bcvk ask the guest to drop
	// its caches; WarnPercent raises the first warning.
	ReclaimPercent = 50
	WarnPercent    = 80
	// A process within ExhaustedPercent of its usable descriptors has run
	// out for practical purposes: the guest's next opens fail.
	ExhaustedPercent = 98
	// Headroom is what virtiofsd cannot use for files: measured with
	// virtiofsd 1.13 at limits of 3000 and 5000, the guest's opens failed
	// once /proc/PID/fd held about 590 fewer than the limit (a plateau at
	// 2409 and 4409).
	Headroom = 640
)

// Usable is how many descriptors a process with s.Limit can give files.
func (s Sample) Usable() uint64 {
	if s.Limit <= 2*Headroom {
		return s.Limit / 2
	}
	return s.Limit - Headroom
}

// Read samples pid under procRoot ("/proc").
func Read(procRoot string, pid int) (Sample, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	f, err := os.Open(filepath.Join(dir, "fd"))
	if err != nil {
		return Sample{}, err
	}
	defer f.Close()
	open := 0
	for {
		names, err := f.Readdirnames(4096)
		open += len(names)
		if err != nil || len(names) == 0 {
			break
		}
	}
	limits, err := os.ReadFile(filepath.Join(dir, "limits"))
	if err != nil {
		return Sample{}, err
	}
	return Sample{Open: open, Limit: ParseLimit(limits)}, nil
}

// ParseLimit returns the soft "Max open files" of /proc/PID/limits, 0 when
// unlimited or absent.
func ParseLimit(limits []byte) uint64 {
	sc := bufio.NewScanner(bytes.NewReader(limits))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Max open files")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}

// LevelOf judges a sample.
func LevelOf(s Sample) Level {
	switch {
	case s.Limit == 0:
		return Fine
	case uint64(s.Open)*100 >= s.Usable()*ExhaustedPercent:
		return Exhausted
	case uint64(s.Open)*100 >= s.Usable()*WarnPercent:
		return High
	case uint64(s.Open)*100 >= s.Usable()*ReclaimPercent:
		return Reclaim
	}
	return Fine
}

// Tracker remembers the highest level each process reached since it was
// last Fine, and reports rises above it: each warning is given once, and
// again only after the count fell back below ReclaimPercent.
type Tracker struct{ peak map[string]Level }

// Update returns the level of s and whether it rose above the peak.
func (t *Tracker) Update(name string, s Sample) (Level, bool) {
	if t.peak == nil {
		t.peak = map[string]Level{}
	}
	l := LevelOf(s)
	if l == Fine {
		t.peak[name] = Fine
		return l, false
	}
	rose := l > t.peak[name]
	t.peak[name] = max(t.peak[name], l)
	return l, rose
}

// Message says what a level means for the share that what serves.
func Message(what string, s Sample, l Level) string {
	const fix = "Raise the host's hard nofile limit (bcvk gives the VM's container the host's hard limit; " +
		"`bcvk system check` shows it), or boot large images with --root-transport erofs, which needs no descriptor per file."
	switch l {
	case Exhausted:
		return fmt.Sprintf("%s has run out of file descriptors (%d open, limit %d): the guest can open no more files from that share, "+
			"so programs in it fail with \"Too many open files\" (error 23) and may not even load their libraries. %s", what, s.Open, s.Limit, fix)
	case High:
		return fmt.Sprintf("%s holds %d of the %d file descriptors it can use for files (limit %d): it keeps one per file the guest has looked up "+
			"and one per open file, and at the limit the guest's file operations fail. %s", what, s.Open, s.Usable(), s.Limit, fix)
	}
	return ""
}
