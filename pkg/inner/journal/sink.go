package journal

import (
	"fmt"
	"io"
	"sync"

	"github.com/sirupsen/logrus"
)

// DefaultMaxBytes bounds the journal kept on the host: a guest that logs
// without end fills neither the state directory nor the user's file.
const DefaultMaxBytes = 64 << 20

// Sink writes lines to one or more files (the state directory's copy and
// the user's --journal file), the same lines to each, until max bytes;
// then it writes one last line that says so and drops the rest. It is safe
// for concurrent use.
type Sink struct {
	mu      sync.Mutex
	ws      []namedWriter
	max     int64
	written int64
	cut     bool
	dropped uint64
	log     logrus.FieldLogger
}

type namedWriter struct {
	name string
	w    io.Writer
}

// NewSink writes up to max bytes (DefaultMaxBytes when zero or less).
func NewSink(max int64, log logrus.FieldLogger) *Sink {
	if max <= 0 {
		max = DefaultMaxBytes
	}
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Sink{max: max, log: log}
}

// Add writes to w too, from now on; name is for errors.
func (s *Sink) Add(name string, w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ws = append(s.ws, namedWriter{name, w})
}

// CutLine is the last line of a journal that reached its bound.
func CutLine(max int64) string {
	return fmt.Sprintf("bcvk: the journal was cut here: it reached %d MiB, and later entries are not kept\n", max>>20)
}

// WriteLine writes one line (with its newline), or drops it once the
// bound is reached. A writer that fails is dropped, with a warning.
func (s *Sink) WriteLine(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		s.dropped++
		return
	}
	if s.written+int64(len(line)) > s.max {
		s.cut = true
		s.dropped++
		line = CutLine(s.max)
	}
	s.written += int64(len(line))
	kept := s.ws[:0]
	for _, w := range s.ws {
		if _, err := io.WriteString(w.w, line); err != nil {
			s.log.Warnf("writing the guest's journal to %s: %v; no more is written there", w.name, err)
			continue
		}
		kept = append(kept, w)
	}
	s.ws = kept
}

// Dropped counts the lines dropped after the bound.
func (s *Sink) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}
