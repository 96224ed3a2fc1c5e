// Package console copies the guest's serial console to a log file (and to a
// terminal when attached), recognises the boot phases in it, and keeps the
// last lines for error messages.
package console

import (
	"bufio"
	"io"
	"strings"
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

// Copy reads r until EOF, writing everything to each of outs.
func (w *Watcher) Copy(r io.Reader, outs ...io.Writer) {
	out := io.MultiWriter(outs...)
	br := bufio.NewReaderSize(r, 64<<10)
	first := true
	var partial strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			if first {
				first = false
				if w.OnFirstOutput != nil {
					w.OnFirstOutput()
				}
			}
			_, _ = out.Write(buf[:n])
			chunk := string(buf[:n])
			for {
				i := strings.IndexByte(chunk, '\n')
				if i < 0 {
					partial.WriteString(chunk)
					break
				}
				partial.WriteString(chunk[:i])
				w.line(consolelog.Clean(partial.String()))
				partial.Reset()
				chunk = chunk[i+1:]
			}
		}
		if err != nil {
			if partial.Len() > 0 {
				w.line(consolelog.Clean(partial.String()))
			}
			return
		}
	}
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
