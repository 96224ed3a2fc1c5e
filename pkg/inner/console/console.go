// Package console copies the guest's serial console to a log file (and to a
// terminal when attached), recognises the boot phases in it, and keeps the
// last lines for error messages.
package console

import (
	"bytes"
	"io"
	"sync"

	"github.com/bcvk/bcvk/pkg/consolelog"
)

// Watcher reads console output.
type Watcher struct {
	mu    sync.Mutex
	lines []string
	max   int
	// OnFirstOutput runs once when the guest prints anything.
	OnFirstOutput func()
	// OnLine runs for every complete line, with escape codes removed.
	OnLine func(line string)
}

// New keeps the last maxLines lines.
func New(maxLines int) *Watcher { return &Watcher{max: maxLines} }

// MaxLine bounds the part of one console line that is kept for the
// classifier and error messages; the guest decides where its lines end.
const MaxLine = 4 << 10

// Copy reads r until EOF, writing everything to each of outs.
func (w *Watcher) Copy(r io.Reader, outs ...io.Writer) {
	out := io.MultiWriter(outs...)
	first := true
	partial := make([]byte, 0, MaxLine)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if first {
				first = false
				if w.OnFirstOutput != nil {
					w.OnFirstOutput()
				}
			}
			_, _ = out.Write(buf[:n])
			chunk := buf[:n]
			for {
				i := bytes.IndexByte(chunk, '\n')
				if i < 0 {
					partial = appendCapped(partial, chunk)
					break
				}
				partial = appendCapped(partial, chunk[:i])
				w.line(consolelog.Clean(string(partial)))
				partial = partial[:0]
				chunk = chunk[i+1:]
			}
		}
		if err != nil {
			if len(partial) > 0 {
				w.line(consolelog.Clean(string(partial)))
			}
			return
		}
	}
}

// appendCapped appends what fits below MaxLine; the rest of a long line is
// dropped.
func appendCapped(line, p []byte) []byte {
	if room := MaxLine - len(line); len(p) > room {
		p = p[:room]
	}
	return append(line, p...)
}

func (w *Watcher) line(l string) {
	w.mu.Lock()
	w.lines = append(w.lines, l)
	if len(w.lines) > w.max {
		w.lines = w.lines[len(w.lines)-w.max:]
	}
	w.mu.Unlock()
	if w.OnLine != nil {
		w.OnLine(l)
	}
}

// Tail returns the last lines seen.
func (w *Watcher) Tail() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}
