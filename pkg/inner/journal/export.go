// Package journal receives the guest's journal, which its journald
// forwards over vsock in the Journal Export Format
// (https://systemd.io/JOURNAL_EXPORT_FORMATS/), and writes it as plain
// lines. Everything the guest sends is untrusted: fields and lines are
// bounded, and what does not parse is skipped, never fatal.
package journal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"time"
)

// Bounds on what one entry may cost.
const (
	// MaxFieldName is journald's own bound on a field name.
	MaxFieldName = 64
	// MaxValue is how much of a kept field's value is kept; the rest is
	// read and dropped, and the entry marked as cut.
	MaxValue = 16 << 10
	// MaxBinary bounds a field in the binary form: a longer length is
	// taken for garbage (journald's own entries are far smaller), and the
	// stream is read on to the next entry.
	MaxBinary = 64 << 20
	// maxLine is the longest text line read whole; the rest of a longer
	// line is dropped.
	maxLine = MaxFieldName + 1 + MaxValue + 1
)

// Entry is what bcvk keeps of one journal entry. Strings are the guest's
// bytes as sent: escape them before printing (Line does).
type Entry struct {
	// Time is __REALTIME_TIMESTAMP, else _SOURCE_REALTIME_TIMESTAMP; zero
	// when the entry has neither.
	Time       time.Time
	Hostname   string // _HOSTNAME
	Identifier string // SYSLOG_IDENTIFIER
	Comm       string // _COMM
	PID        string // _PID, else SYSLOG_PID
	Message    string // MESSAGE
	// Cut says a kept field was longer than MaxValue.
	Cut bool

	source    time.Time
	syslogPID string
}

// Reader reads entries from an export-format stream.
type Reader struct {
	r *bufio.Reader
	// Malformed counts what was skipped: lines that are no field, binary
	// fields with a bad length or no newline after them.
	Malformed uint64

	cur    Entry
	fields int  // fields in cur so far
	resync bool // garbage: skip to the next empty line
}

// NewReader reads entries from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, maxLine)}
}

// Next returns the next entry with at least one field. At the end of the
// stream it returns the entry in progress, if it has a message, and then
// io.EOF (or the stream's error).
func (r *Reader) Next() (Entry, error) {
	for {
		line, long, err := r.line()
		if err != nil {
			if r.fields > 0 && r.cur.Message != "" && !r.resync {
				e := r.finish()
				return e, nil
			}
			r.reset()
			return Entry{}, err
		}
		if len(line) == 0 {
			// The end of an entry.
			if r.resync || r.fields == 0 {
				r.reset()
				continue
			}
			return r.finish(), nil
		}
		if r.resync {
			continue
		}
		if name, value, ok := bytes.Cut(line, []byte("=")); ok {
			if !validName(name) {
				r.Malformed++
				continue
			}
			r.set(string(name), value, long)
			continue
		}
		if !validName(line) {
			r.Malformed++
			continue
		}
		// The binary form: NAME, a newline, a 64-bit little-endian
		// length, the value and a newline.
		name := string(line)
		if err := r.binary(name); err != nil {
			r.reset()
			return Entry{}, eof(err)
		}
	}
}

// line returns the next line without its newline, at most maxLine bytes
// of it (long says there was more); the slice is valid until the next
// read.
func (r *Reader) line() (b []byte, long bool, err error) {
	b, err = r.r.ReadSlice('\n')
	switch {
	case err == nil:
		return b[:len(b)-1], false, nil
	case errors.Is(err, bufio.ErrBufferFull):
		// Keep the start, drop the rest of the line. A copy: skipping
		// reads over the buffer.
		head := bytes.Clone(b)
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = r.r.ReadSlice('\n')
		}
		if err != nil {
			return nil, false, eof(err)
		}
		return head, true, nil
	default:
		return nil, false, eof(err)
	}
}

// eof makes a stream that ends part way through a line or field end
// like one that ends between entries.
func eof(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	return err
}

func (r *Reader) binary(name string) error {
	var n [8]byte
	if _, err := io.ReadFull(r.r, n[:]); err != nil {
		return err
	}
	size := binary.LittleEndian.Uint64(n[:])
	if size > MaxBinary {
		r.Malformed++
		r.resync = true
		return nil
	}
	keep := min(size, MaxValue)
	var value []byte
	if keepField(name) {
		value = make([]byte, keep)
		if _, err := io.ReadFull(r.r, value); err != nil {
			return err
		}
	} else {
		keep = 0
	}
	if _, err := io.CopyN(io.Discard, r.r, int64(size-keep)); err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	c, err := r.r.ReadByte()
	if err != nil {
		return err
	}
	if c != '\n' {
		r.Malformed++
		_ = r.r.UnreadByte()
	}
	r.set(name, value, size > keep)
	return nil
}

// keepField says whether Entry keeps name.
func keepField(name string) bool {
	switch name {
	case "MESSAGE", "_HOSTNAME", "SYSLOG_IDENTIFIER", "_COMM", "_PID", "SYSLOG_PID",
		"__REALTIME_TIMESTAMP", "_SOURCE_REALTIME_TIMESTAMP":
		return true
	}
	return false
}

func (r *Reader) set(name string, value []byte, cut bool) {
	r.fields++
	if !keepField(name) {
		return
	}
	if len(value) > MaxValue {
		value, cut = value[:MaxValue], true
	}
	if cut {
		r.cur.Cut = true
	}
	v := string(value)
	switch name {
	case "MESSAGE":
		r.cur.Message = v
	case "_HOSTNAME":
		r.cur.Hostname = v
	case "SYSLOG_IDENTIFIER":
		r.cur.Identifier = v
	case "_COMM":
		r.cur.Comm = v
	case "_PID":
		r.cur.PID = v
	case "SYSLOG_PID":
		r.cur.syslogPID = v
	case "__REALTIME_TIMESTAMP":
		r.cur.Time = usec(v)
	case "_SOURCE_REALTIME_TIMESTAMP":
		r.cur.source = usec(v)
	}
}

func (r *Reader) finish() Entry {
	e := r.cur
	if e.Time.IsZero() {
		e.Time = e.source
	}
	if e.PID == "" {
		e.PID = e.syslogPID
	}
	e.source, e.syslogPID = time.Time{}, ""
	r.reset()
	return e
}

func (r *Reader) reset() {
	r.cur, r.fields, r.resync = Entry{}, 0, false
}

// usec reads microseconds since the epoch; zero when v is not a number.
func usec(v string) time.Time {
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(n)).UTC()
}

// validName checks a journal field name: A-Z, 0-9 and '_', not starting
// with a digit, at most MaxFieldName bytes.
func validName(b []byte) bool {
	if len(b) == 0 || len(b) > MaxFieldName || ('0' <= b[0] && b[0] <= '9') {
		return false
	}
	for _, c := range b {
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
