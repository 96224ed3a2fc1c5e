package consolelog

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text\n", "plain text\n"},
		{"\x1b[0;32m  OK  \x1b[0m] Started", "  OK  ] Started"},
		{"a\rb", "ab"},
		// OSC 52 would set the user's clipboard; OSC 0 the window title.
		{"x\x1b]52;c;cm0gLXJmIH4K\x07y", "xy"},
		{"x\x1b]0;title\x1b\\y", "xy"},
		// DCS, APC, PM, SOS strings end at ST.
		{"a\x1bPq#0;2;0;0;0\x1b\\b", "ab"},
		{"a\x1b_hidden\x1b\\b\x1b^pm\x07c\x1bXsos\x1b\\d", "abcd"},
		// backspace over text, bell, other C0
		{"rm -rf /\b\b\b\b\b\b\b\bls\x07\x00\x05", "rm -rf /ls"},
		// C1 controls, UTF-8 encoded and raw 8-bit
		{"a\u009b31mb\u009dc", "a31mbc"},
		{"a\x9b31mb", "a31mb"},
		// cursor movement and erase
		{"a\x1b[2J\x1b[H\x1b[10;20Hb\x1b[?25l", "ab"},
		{"a\x1b(Bb\x1b=c\x1b>d\x1b7e", "abcde"},
		{"tab\tkept, ünïcode kept", "tab\tkept, ünïcode kept"},
		// a CSI cut short by a control: the control is then seen as text
		{"a\x1b[12\nb", "a\nb"},
	} {
		if got := Clean(c.in); got != c.want {
			t.Errorf("Clean(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFilterKeepsColoursForTerminals(t *testing.T) {
	in := "\x1b[0;32m  OK  \x1b[0m\x1b]52;c;eA==\x07\x1b[2J\x1b[1;31mred\x1b[m\x1b[38;5;196mx\x1b[?1049h"
	want := "\x1b[0;32m  OK  \x1b[0m\x1b[1;31mred\x1b[m\x1b[38;5;196mx"
	if got := string(NewFilter(true).Append(nil, []byte(in))); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// an overlong parameter list is not a colour
	long := "\x1b[" + string(bytes.Repeat([]byte("1;"), 100)) + "mz"
	if got := string(NewFilter(true).Append(nil, []byte(long))); got != "z" {
		t.Fatalf("overlong SGR kept: %q", got)
	}
}

// Sequences split across writes are recognised as if written at once.
func TestWriterSplitWrites(t *testing.T) {
	in := []byte("a\x1b]52;c;eA==\x1b\\b\x1b[1;31mc\u009bd ü\xc3\xa9 e")
	want := string(NewFilter(true).Append(nil, in))
	for size := 1; size <= 4; size++ {
		var out bytes.Buffer
		w := NewWriter(&out, true)
		for i := 0; i < len(in); i += size {
			if _, err := w.Write(in[i:min(i+size, len(in))]); err != nil {
				t.Fatal(err)
			}
		}
		if out.String() != want {
			t.Errorf("chunks of %d: got %q, want %q", size, out.String(), want)
		}
	}
}

// Whatever the guest prints, the filtered text has no escape, no control
// but newline and tab, no C1 control and is valid UTF-8; with colours kept,
// every ESC starts an SGR sequence.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{"\x1b]52;c;eA==\x07", "\x1b[1;31mx\x1b[0m", "a\u009bb\x9b", "\x1bP\x1b\\", "\x1b[" + "9;9;9;9m"} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, keep bool) {
		out := NewFilter(keep).Append(nil, in)
		if !utf8.Valid(out) {
			t.Fatalf("invalid UTF-8 out of %q: %q", in, out)
		}
		for i := 0; i < len(out); {
			r, n := utf8.DecodeRune(out[i:])
			switch {
			case r == 0x1b && keep:
				j := i + 2
				for j < len(out) && (out[j] >= '0' && out[j] <= '9' || out[j] == ';') {
					j++
				}
				if i+1 >= len(out) || out[i+1] != '[' || j >= len(out) || out[j] != 'm' {
					t.Fatalf("a non-colour escape passed in %q: %q", in, out)
				}
			case r < 0x20 && r != '\n' && r != '\t', r == 0x7f, r >= 0x80 && r <= 0x9f:
				t.Fatalf("control %U passed in %q: %q", r, in, out)
			}
			i += n
		}
	})
}
