package vsock

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNotifyBytes bounds one sd_notify message; systemd's own are far
// smaller.
const MaxNotifyBytes = 4096

// Notify is what bcvk uses of one sd_notify message from the guest's
// systemd. Strings come from the guest: control characters, invisible
// formatting characters and invalid UTF-8 in them are escaped (\x1b,
// \u202e), so they are safe to print.
type Notify struct {
	Ready        bool   // READY=1
	Status       string // STATUS=
	Stopping     bool   // STOPPING=1
	ExitStatus   *int   // EXIT_STATUS=, 0..255
	UnitActive   string // X_SYSTEMD_UNIT_ACTIVE=, a unit that became active
	UnitInactive string // X_SYSTEMD_UNIT_INACTIVE=
	Shutdown     string // X_SYSTEMD_SHUTDOWN=: poweroff, reboot, halt, kexec
	// Other lists the keys of the other assignments, in order.
	Other []string
}

// ParseNotify parses a message of newline-separated KEY=VALUE
// assignments. Lines without '=' and invalid keys or values are skipped;
// a message with no assignment left is an error, as is one longer than
// MaxNotifyBytes. Errors never quote the message.
func ParseNotify(b []byte) (Notify, error) {
	var n Notify
	if len(b) > MaxNotifyBytes {
		return n, fmt.Errorf("sd_notify message of more than %d bytes", MaxNotifyBytes)
	}
	assignments := 0
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte("="))
		if !ok || !validKey(k) {
			continue
		}
		if n.assign(string(k), v) {
			assignments++
		}
	}
	if assignments == 0 {
		return n, errors.New("sd_notify message without any KEY=VALUE assignment")
	}
	return n, nil
}

// assign records one assignment and reports whether it was valid.
func (n *Notify) assign(k string, v []byte) bool {
	switch k {
	case "READY":
		n.Ready = string(v) == "1"
	case "STOPPING":
		n.Stopping = string(v) == "1"
	case "STATUS":
		n.Status = escape(v)
	case "EXIT_STATUS":
		// Only decimal digits: no sign, no spaces.
		if len(v) == 0 || len(v) > 3 || strings.TrimLeft(string(v), "0123456789") != "" {
			return false
		}
		s, _ := strconv.Atoi(string(v))
		if s > 255 {
			return false
		}
		n.ExitStatus = &s
	case "X_SYSTEMD_UNIT_ACTIVE":
		n.UnitActive = escape(v)
	case "X_SYSTEMD_UNIT_INACTIVE":
		n.UnitInactive = escape(v)
	case "X_SYSTEMD_SHUTDOWN":
		n.Shutdown = escape(v)
	default:
		n.Other = append(n.Other, k)
	}
	return true
}

// validKey accepts the keys sd_notify uses: A-Z, 0-9 and '_'.
func validKey(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	for _, c := range k {
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// escape returns v with everything that is not a printable character
// (control and formatting characters, invalid UTF-8) escaped Go-style.
func escape(v []byte) string {
	var sb strings.Builder
	for len(v) > 0 {
		r, size := utf8.DecodeRune(v)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&sb, `\x%02x`, v[0])
		case unicode.IsPrint(r):
			sb.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&sb, `\x%02x`, r)
		case r <= 0xFFFF:
			fmt.Fprintf(&sb, `\u%04x`, r)
		default:
			fmt.Fprintf(&sb, `\U%08x`, r)
		}
		v = v[size:]
	}
	return sb.String()
}
