package journal

import (
	"strings"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	recv := time.Date(2026, 12, 1, 0, 0, 0, 0, time.FixedZone("x", 3600))
	for _, c := range []struct {
		name string
		e    Entry
		want string
	}{
		{"full", Entry{Time: t0, Hostname: "vm1", Identifier: "sshd", Comm: "sshd-session", PID: "42", Message: "Server listening."},
			"2026-11-30T13:05:11.123456Z vm1 sshd[42]: Server listening.\n"},
		{"kernel: no PID", Entry{Time: t0, Hostname: "h", Identifier: "kernel", Message: "Linux version"},
			"2026-11-30T13:05:11.123456Z h kernel: Linux version\n"},
		{"comm, no hostname, received time in UTC", Entry{Comm: "logger", Message: "m"},
			"2026-11-30T23:00:00.000000Z logger: m\n"},
		{"nothing", Entry{Time: t0}, "2026-11-30T13:05:11.123456Z unknown: \n"},
		{"escaped", Entry{Time: t0, Hostname: "a\nb", Identifier: "x\x1b[2J", PID: "1]\r", Message: "two\nlines\ttab\x00 \xff bidi\u202e ok ünï"},
			"2026-11-30T13:05:11.123456Z a\\nb x\\x1b[2J[1]\\r]: two\\nlines\\ttab\\x00 \\xff bidi\\u202e ok ünï\n"},
		{"cut", Entry{Time: t0, Identifier: "a", Message: "m", Cut: true}, "2026-11-30T13:05:11.123456Z a: m" + CutMark + "\n"},
		{"long identifier", Entry{Time: t0, Identifier: strings.Repeat("é", 40), Message: "m"},
			"2026-11-30T13:05:11.123456Z " + strings.Repeat("é", 32) + ": m\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Line(c.e, recv); got != c.want {
				t.Errorf("got\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}
