// Package tail keeps the last lines of a text: of a slice, or of a stream
// written line by line, at a bounded cost.
package tail

import (
	"bytes"
	"strings"
	"sync"
)

// Last returns the last n of lines (all of them when there are fewer). It
// shares lines' backing array.
func Last(lines []string, n int) []string {
	if n < 0 {
		n = 0
	}
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

// CutMark ends a line that was longer than the limit.
const CutMark = " [line cut]"

// Lines is an io.Writer that splits what is written into lines, passes
// each complete line to its emit function and keeps the last max of them.
// A line is cut at maxLine bytes (and marked with CutMark), so output
// without newlines (a progress bar) costs bounded memory and time linear in
// its size. Writers may be concurrent (a command's stdout and stderr).
type Lines struct {
	max, maxLine int
	emit         func(string)

	mu      sync.Mutex
	partial []byte
	cut     bool // the partial line was longer than maxLine
	last    []string
}

// New keeps the last max lines of at most maxLine bytes each; emit (may be
// nil) sees every line as it completes.
func New(max, maxLine int, emit func(string)) *Lines {
	return &Lines{max: max, maxLine: maxLine, emit: emit}
}

func (t *Lines) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.add(p)
			return n, nil
		}
		t.add(p[:i])
		t.endLine()
		p = p[i+1:]
	}
}

func (t *Lines) add(b []byte) {
	if room := t.maxLine - len(t.partial); len(b) > room {
		b, t.cut = b[:room], true
	}
	t.partial = append(t.partial, b...)
}

func (t *Lines) endLine() {
	l := strings.TrimRight(string(t.partial), "\r")
	if t.cut {
		l += CutMark
	}
	t.partial, t.cut = t.partial[:0], false
	if t.emit != nil {
		t.emit(l)
	}
	t.last = Last(append(t.last, l), t.max)
}

// Flush ends a last line that has no newline.
func (t *Lines) Flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.partial) > 0 || t.cut {
		t.endLine()
	}
}

// Lines returns a copy of the last lines.
func (t *Lines) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.last...)
}
