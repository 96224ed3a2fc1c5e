// Package progress shows named steps on stderr: a spinner with ✓/✗ on a
// terminal, plain lines when piped or with NO_COLOR / TERM=dumb, nothing when
// quiet.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Mode of display.
type Mode int

const (
	Quiet Mode = iota
	Plain
	Spinner
)

// ModeFor picks the display for w.
func ModeFor(w io.Writer, quiet bool) Mode {
	if quiet {
		return Quiet
	}
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return Plain
	}
	if IsTerminal(w) {
		return Spinner
	}
	return Plain
}

// IsTerminal reports whether v is a file open on a terminal.
func IsTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Status shows one step at a time.
type Status struct {
	w    io.Writer
	mode Mode
	mu   sync.Mutex
	wmu  sync.Mutex // one writer at a time: the spinner or Log
	step string
	// detail is what the step is at (the guest's systemd), shown by the
	// spinner only: a plain log would get a line per unit.
	detail string
	start  time.Time
	stop   chan struct{}
	done   chan struct{}
}

// New writes to w in mode.
func New(w io.Writer, mode Mode) *Status { return &Status{w: w, mode: mode} }

var frames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// Start ends the current step successfully (if any) and begins a new one.
func (s *Status) Start(step string) {
	s.End(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.step, s.detail, s.start = step, "", time.Now()
	switch s.mode {
	case Plain:
		fmt.Fprintf(s.w, "• %s...\n", step)
	case Spinner:
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.spin(step, s.start, s.stop, s.done)
	}
}

func (s *Status) spin(step string, start time.Time, stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		s.mu.Lock()
		d := s.detail
		s.mu.Unlock()
		if d != "" {
			d = ": " + d
		}
		s.wmu.Lock()
		fmt.Fprintf(s.w, "\r\x1b[K%s %s (%.0fs)%s", frames[i%len(frames)], step, time.Since(start).Seconds(), d)
		s.wmu.Unlock()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// Detail says what the current step is at, beside it on a terminal.
func (s *Status) Detail(d string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.detail = d
}

// Log prints a line of output that belongs to the current step (a tool's
// own progress) above the spinner; quiet mode drops it.
func (s *Status) Log(line string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	switch s.mode {
	case Plain:
		fmt.Fprintf(s.w, "  %s\n", line)
	case Spinner:
		fmt.Fprintf(s.w, "\r\x1b[K  %s\n", line)
	}
}

// End finishes the current step.
func (s *Status) End(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step == "" {
		return
	}
	el := time.Since(s.start).Seconds()
	mark := "✓"
	if !ok {
		mark = "✗"
	}
	switch s.mode {
	case Plain:
		fmt.Fprintf(s.w, "%s %s (%.1fs)\n", mark, s.step, el)
	case Spinner:
		close(s.stop)
		<-s.done
		fmt.Fprintf(s.w, "\r\x1b[K%s %s (%.1fs)\n", mark, s.step, el)
	}
	s.step = ""
}
