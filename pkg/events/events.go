// Package events defines the JSON-lines stream that bcvk-inner writes and the
// host side follows: the phases a boot goes through and how it ended.
package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"sync"
	"time"
)

// Phase names, in boot order.
const (
	PhaseContainer = "container" // bcvk-inner started
	PhaseRoot      = "root"      // the EROFS image of the root is built or found (a step)
	PhaseKernel    = "kernel"    // kernel found in the image, QEMU started
	PhaseBooting   = "booting"   // the guest printed its first console output
	PhaseSystemd   = "systemd"   // the image's init took over
	PhaseSSH       = "ssh"       // SSH answered a real login
	PhaseExited    = "exited"    // the VM ended; see Event.ExitCode
	PhaseError     = "error"     // bcvk-inner failed; see Event.Message
	PhaseWarning   = "warning"   // something the user should know
	PhaseInfo      = "info"      // a detail shown at --log-level debug
	PhaseProgress  = "progress"  // the guest's systemd reports progress (over vsock)
)

// Event is one line of the stream.
type Event struct {
	Time    time.Time `json:"time"`
	Phase   string    `json:"phase"`
	Message string    `json:"message,omitempty"`
	// Code names a condition the host side acts on (see Code* constants).
	Code     string `json:"code,omitempty"`
	ExitCode *int   `json:"exitCode,omitempty"`
}

// CodeKVMUnusable marks the warning that KVM failed and TCG was used; the
// host remembers it so later VMs skip the KVM attempt.
const CodeKVMUnusable = "kvm-unusable"

// CodeFDLimit marks the warnings that a virtiofsd nears or reached its
// file descriptor limit.
const CodeFDLimit = "fd-limit"

// CodeTransport marks the notice that SSH falls back to TCP by itself.
const CodeTransport = "ssh-transport"

// Writer appends events to a file, one JSON object per line.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Emit writes one event; errors are ignored because the events are advisory
// and the VM must not stop because a reader went away.
func (w *Writer) Emit(phase, msg string) { w.emit(Event{Phase: phase, Message: msg}) }

// Warn emits a warning with a code.
func (w *Writer) Warn(code, msg string) { w.emit(Event{Phase: PhaseWarning, Code: code, Message: msg}) }

// Exited records how the VM ended.
func (w *Writer) Exited(code int, msg string) {
	w.emit(Event{Phase: PhaseExited, Message: msg, ExitCode: &code})
}

func (w *Writer) emit(e Event) {
	if w == nil || w.w == nil {
		return
	}
	e.Time = time.Now().UTC()
	b, _ := json.Marshal(e)
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = w.w.Write(append(b, '\n'))
}

// Reader reads new events from a file that another process appends to. It
// keeps its offset, so each call returns only events not seen before, and it
// never returns a half-written line.
type Reader struct {
	path   string
	offset int64
	buf    []byte
}

// NewReader follows path, which may not exist yet.
func NewReader(path string) *Reader { return &Reader{path: path} }

// Next returns the complete events appended since the last call.
func (r *Reader) Next() ([]Event, error) {
	f, err := os.Open(r.path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(r.offset, io.SeekStart); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	r.offset += int64(len(data))
	r.buf = append(r.buf, data...)
	var out []Event
	for {
		i := bytes.IndexByte(r.buf, '\n')
		if i < 0 {
			break
		}
		line := r.buf[:i]
		r.buf = r.buf[i+1:]
		var e Event
		if json.Unmarshal(line, &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// ReadAll returns every event in a file.
func ReadAll(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Event
	s := bufio.NewScanner(f)
	for s.Scan() {
		var e Event
		if json.Unmarshal(s.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out, s.Err()
}
