package console

import (
	"errors"
	"os"
	"sync"

	"github.com/bcvk/bcvk/pkg/consolelog"
	"golang.org/x/sys/unix"
)

// DefaultLogMax bounds each part of the console log. The log lives on the
// user's runtime tmpfs and the guest decides how much it prints: at most
// two parts are kept, the current one and the one before (PATH.1).
const DefaultLogMax = 8 << 20

// LogFile is a console log that keeps only its last part: when it reaches
// its cap it is renamed to PATH.1 (replacing an older one) and a new file
// starts. Readers (bcvk ephemeral logs) read PATH.1, then PATH.
type LogFile struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File
	size int64
}

// OpenLog creates (or empties) the log at path, with parts of at most max
// bytes.
func OpenLog(path string, max int64) (*LogFile, error) {
	l := &LogFile{path: path, max: max}
	if err := l.Reset(); err != nil {
		return nil, err
	}
	return l, nil
}

// Write appends p, starting a new part first when p would pass the cap. A
// single write larger than the cap keeps only its end.
func (l *LogFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	if int64(len(p)) > l.max {
		p = p[int64(len(p))-l.max:]
	}
	if l.size+int64(len(p)) > l.max {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	}
	w, err := l.f.Write(p)
	l.size += int64(w)
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (l *LogFile) rotate() error {
	if err := os.Rename(l.path, consolelog.RotatedPath(l.path)); err != nil {
		return err
	}
	return l.open()
}

// Reset empties the log, both parts: a new boot of the VM starts a new log.
func (l *LogFile) Reset() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := os.Remove(consolelog.RotatedPath(l.path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return l.open()
}

func (l *LogFile) open() error {
	if l.f != nil {
		_ = l.f.Close()
	}
	// O_NOFOLLOW: the directory is shared with the host.
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		l.f = nil
		return err
	}
	l.f, l.size = f, 0
	return nil
}

// Close closes the current part.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
