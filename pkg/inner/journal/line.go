package journal

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// TimeFormat is the time at the start of each line: UTC, microseconds.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// Bounds on the short fields of a line; the message has MaxValue.
const maxShort = 64

// CutMark ends a line whose message (or another field) was cut.
const CutMark = " [cut]"

// Line renders e as one line, like journalctl's short format:
//
//	2026-11-30T13:05:11.123456Z HOSTNAME IDENT[PID]: MESSAGE
//
// with the time in UTC (received, when the entry has none), the
// identifier SYSLOG_IDENTIFIER, else _COMM, else "unknown", and no
// hostname or [PID] when the entry has none. Everything that is not a
// printable character is escaped Go-style (\n, \t, \x1b, \u202e, and
// \xff for invalid UTF-8), so that a line is one line and the guest
// cannot move a terminal's cursor.
func Line(e Entry, received time.Time) string {
	t := e.Time
	if t.IsZero() {
		t = received
	}
	var b strings.Builder
	b.WriteString(t.UTC().Format(TimeFormat))
	b.WriteByte(' ')
	if e.Hostname != "" {
		b.WriteString(escape(e.Hostname, maxShort))
		b.WriteByte(' ')
	}
	ident := e.Identifier
	if ident == "" {
		ident = e.Comm
	}
	if ident == "" {
		ident = "unknown"
	}
	b.WriteString(escape(ident, maxShort))
	if e.PID != "" {
		b.WriteString("[" + escape(e.PID, maxShort) + "]")
	}
	b.WriteString(": ")
	b.WriteString(escape(e.Message, MaxValue))
	if e.Cut {
		b.WriteString(CutMark)
	}
	b.WriteByte('\n')
	return b.String()
}

// escape returns the first max bytes of v with everything that is not a
// printable character escaped.
func escape(v string, max int) string {
	if len(v) > max {
		// Not in the middle of a character.
		for i := 0; i < utf8.UTFMax-1 && max > 0 && !utf8.RuneStart(v[max]); i++ {
			max--
		}
		v = v[:max]
	}
	var b strings.Builder
	for len(v) > 0 {
		r, size := utf8.DecodeRuneInString(v)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, v[0])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xFFFF:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		v = v[size:]
	}
	return b.String()
}
