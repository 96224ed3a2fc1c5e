package consolelog

import (
	"io"
	"unicode/utf8"
)

// What the guest prints is data: a terminal must not act on it. OSC can set
// the clipboard (OSC 52) or the window title, DCS and the other string
// sequences talk to the terminal itself, C1 controls are 8-bit forms of the
// same, and backspace or carriage return can hide text that was printed.
// Filter keeps printable text, newlines and tabs, and (for a terminal) the
// SGR sequences that colour text; everything else is dropped.

const maxCSI = 64 // longer parameter lists are not colours: dropped

type filterState int

const (
	stText    filterState = iota
	stEsc                 // after ESC
	stCSI                 // ESC [ parameters...
	stString              // OSC, DCS, SOS, PM, APC: until BEL or ST
	stStrEsc              // ESC inside a string: ST is ESC \
	stCharset             // ESC ( and friends take one more byte
)

// Filter removes control sequences from a byte stream; sequences may be
// split across writes.
type Filter struct {
	keepSGR bool
	state   filterState
	csi     []byte // ESC [ and its parameters, while in stCSI
	csiLong bool   // the parameters outgrew maxCSI: not a colour
	pending []byte // an incomplete UTF-8 sequence from the last write
}

// NewFilter returns a filter; keepSGR keeps colour sequences (for output
// to a terminal).
func NewFilter(keepSGR bool) *Filter { return &Filter{keepSGR: keepSGR} }

// Append filters p and appends the result to dst.
func (f *Filter) Append(dst, p []byte) []byte {
	if len(f.pending) > 0 {
		p = append(f.pending, p...)
		f.pending = nil
	}
	for i := 0; i < len(p); {
		c := p[i]
		switch f.state {
		case stText:
			switch {
			case c == 0x1b:
				f.state = stEsc
			case c == '\n' || c == '\t':
				dst = append(dst, c)
			case c < 0x20 || c == 0x7f:
				// other C0 controls (CR, BS, BEL, ...) dropped
			case c < utf8.RuneSelf:
				dst = append(dst, c)
			default:
				if !utf8.FullRune(p[i:]) {
					f.pending = append([]byte(nil), p[i:]...)
					return dst
				}
				r, n := utf8.DecodeRune(p[i:])
				// Invalid bytes (a raw 8-bit C1 such as 0x9b) and the C1
				// controls U+0080-U+009F are dropped.
				if r != utf8.RuneError && (r < 0x80 || r > 0x9f) {
					dst = append(dst, p[i:i+n]...)
				}
				i += n
				continue
			}
		case stEsc:
			switch c {
			case '[':
				f.state = stCSI
				f.csi, f.csiLong = append(f.csi[:0], 0x1b, '['), false
			case ']', 'P', 'X', '^', '_':
				f.state = stString
			case '(', ')', '*', '+', '-', '.', '/', '#', '%', ' ':
				f.state = stCharset
			default:
				f.state = stText // a two-byte sequence: dropped
			}
		case stCSI:
			switch {
			case c >= 0x40 && c <= 0x7e: // final byte
				if f.keepSGR && c == 'm' && !f.csiLong && sgrParams(f.csi[2:]) {
					dst = append(append(dst, f.csi...), 'm')
				}
				f.state = stText
			case c >= 0x20 && c <= 0x3f && len(f.csi) < maxCSI:
				f.csi = append(f.csi, c)
			case c >= 0x20 && c <= 0x3f:
				f.csiLong = true // dropped at its final byte
			default:
				// a control inside a sequence ends it
				f.state = stText
				continue
			}
		case stString:
			switch c {
			case 0x07:
				f.state = stText
			case 0x1b:
				f.state = stStrEsc
			}
		case stStrEsc:
			if c == '\\' {
				f.state = stText
			} else if c != 0x1b {
				f.state = stString
			}
		case stCharset:
			f.state = stText
		}
		i++
	}
	return dst
}

// sgrParams reports whether params are a plain SGR list (digits and ;).
func sgrParams(params []byte) bool {
	for _, c := range params {
		if (c < '0' || c > '9') && c != ';' {
			return false
		}
	}
	return true
}

// Writer filters what is written to it before passing it on.
type Writer struct {
	w   io.Writer
	f   *Filter
	buf []byte
}

// NewWriter filters everything written to w; keepSGR for a terminal.
func NewWriter(w io.Writer, keepSGR bool) *Writer { return &Writer{w: w, f: NewFilter(keepSGR)} }

func (w *Writer) Write(p []byte) (int, error) {
	w.buf = w.f.Append(w.buf[:0], p)
	if len(w.buf) > 0 {
		if _, err := w.w.Write(w.buf); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
