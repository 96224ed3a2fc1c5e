package vsock

import (
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func intp(i int) *int { return &i }

func TestParseNotify(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Notify
		err  string
	}{
		{name: "ready", in: "READY=1", want: Notify{Ready: true}},
		{name: "ready with status", in: "READY=1\nSTATUS=Startup finished in 1.2s\n",
			want: Notify{Ready: true, Status: "Startup finished in 1.2s"}},
		{name: "not ready", in: "READY=0", want: Notify{}},
		{name: "unit active", in: "X_SYSTEMD_UNIT_ACTIVE=sshd.service\n",
			want: Notify{UnitActive: "sshd.service"}},
		{name: "unit inactive", in: "X_SYSTEMD_UNIT_INACTIVE=getty@tty1.service",
			want: Notify{UnitInactive: "getty@tty1.service"}},
		{name: "shutdown", in: "STOPPING=1\nX_SYSTEMD_SHUTDOWN=poweroff\nSTATUS=Shutting down",
			want: Notify{Stopping: true, Shutdown: "poweroff", Status: "Shutting down"}},
		{name: "exit status", in: "EXIT_STATUS=42", want: Notify{ExitStatus: intp(42)}},
		{name: "exit status zero", in: "EXIT_STATUS=0", want: Notify{ExitStatus: intp(0)}},
		{name: "exit status 255", in: "EXIT_STATUS=255", want: Notify{ExitStatus: intp(255)}},
		{name: "exit status too big", in: "EXIT_STATUS=256\nREADY=1", want: Notify{Ready: true}},
		{name: "exit status negative", in: "EXIT_STATUS=-1\nREADY=1", want: Notify{Ready: true}},
		{name: "exit status not a number", in: "EXIT_STATUS=1x\nEXIT_STATUS= 1\nREADY=1", want: Notify{Ready: true}},
		{name: "exit status huge", in: "EXIT_STATUS=99999999999999999999999\nREADY=1", want: Notify{Ready: true}},
		{name: "unknown keys", in: "MAINPID=1\nREADY=1\nX_SYSTEMD_UNKNOWN=\n",
			want: Notify{Ready: true, Other: []string{"MAINPID", "X_SYSTEMD_UNKNOWN"}}},
		{name: "malformed lines skipped", in: "garbage\n\nREADY=1\n=x\nlower=1\n",
			want: Notify{Ready: true}},
		{name: "last wins", in: "STATUS=a\nSTATUS=b", want: Notify{Status: "b"}},
		{name: "value with equals", in: "STATUS=a=b", want: Notify{Status: "a=b"}},
		{name: "control characters escaped", in: "STATUS=\x1b[31mred\x1b[0m\r\x00\x7f",
			want: Notify{Status: `\x1b[31mred\x1b[0m\x0d\x00\x7f`}},
		{name: "bidi override escaped", in: "STATUS=abc\u202edef", want: Notify{Status: `abc\u202edef`}},
		{name: "invalid UTF-8 escaped", in: "X_SYSTEMD_SHUTDOWN=re\xffboot", want: Notify{Shutdown: `re\xffboot`}},
		{name: "unicode kept", in: "STATUS=Démarré ✓", want: Notify{Status: "Démarré ✓"}},
		{name: "empty", in: "", err: "without any KEY=VALUE"},
		{name: "only garbage", in: "hello\nworld\x1b", err: "without any KEY=VALUE"},
		{name: "too long", in: "STATUS=" + strings.Repeat("x", MaxNotifyBytes), err: "more than 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNotify([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseNotifyLimit(t *testing.T) {
	msg := "STATUS=" + strings.Repeat("x", MaxNotifyBytes-len("STATUS="))
	if _, err := ParseNotify([]byte(msg)); err != nil {
		t.Fatalf("a message of exactly %d bytes: %v", MaxNotifyBytes, err)
	}
	if _, err := ParseNotify([]byte(msg + "\n")); err == nil {
		t.Fatal("one byte over the limit accepted")
	}
}

// printable reports whether s is safe to print: valid UTF-8 with nothing
// but printable characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func FuzzParseNotify(f *testing.F) {
	for _, s := range []string{
		"READY=1",
		"READY=1\nSTATUS=Startup finished in 3.1s (kernel) + 5s (userspace)\n",
		"X_SYSTEMD_UNIT_ACTIVE=sshd.service\n",
		"STOPPING=1\nX_SYSTEMD_SHUTDOWN=reboot\nEXIT_STATUS=3\n",
		"STATUS=\x1b]0;pwned\x07\u202e\xff\xfe",
		"EXIT_STATUS=256\nEXIT_STATUS=-0\nEXIT_STATUS=007",
		"=\n==\n\n\x00=\x00",
		"MAINPID=1\nWATCHDOG=1\nX_SYSTEMD_UNKNOWN=x",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseNotify(b)
		if len(b) > MaxNotifyBytes && err == nil {
			t.Fatal("oversized message accepted")
		}
		if err != nil {
			if strings.Contains(err.Error(), string(b)) && len(b) > 8 {
				t.Fatalf("error %q quotes the message", err)
			}
			return
		}
		for _, s := range append([]string{n.Status, n.UnitActive, n.UnitInactive, n.Shutdown}, n.Other...) {
			if !printable(s) {
				t.Fatalf("unsafe string %q", s)
			}
		}
		if n.ExitStatus != nil && (*n.ExitStatus < 0 || *n.ExitStatus > 255) {
			t.Fatalf("exit status %d", *n.ExitStatus)
		}
		if n.Ready && !strings.Contains(string(b), "READY=1") {
			t.Fatal("ready without READY=1")
		}
	})
}
