package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// text is one field in the text form.
func text(name, value string) string { return name + "=" + value + "\n" }

// bin is one field in the binary form.
func bin(name, value string) string { return binLen(name, uint64(len(value))) + value + "\n" }

func binLen(name string, n uint64) string {
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], n)
	return name + "\n" + string(l[:])
}

// entry ends a list of fields.
func entry(fields ...string) string { return strings.Join(fields, "") + "\n" }

// readAll reads every entry of stream through r's reads.
func readAll(t *testing.T, in io.Reader) ([]Entry, *Reader) {
	t.Helper()
	r := NewReader(in)
	var out []Entry
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, r
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
		if len(out) > 1000 {
			t.Fatal("too many entries")
		}
	}
}

var t0 = time.Date(2026, 11, 30, 13, 5, 11, 123456000, time.UTC)

func TestReaderText(t *testing.T) {
	stream := entry(
		text("__CURSOR", "s=abc;i=1"),
		text("__REALTIME_TIMESTAMP", "1796043911123456"),
		text("__MONOTONIC_TIMESTAMP", "123"),
		text("_HOSTNAME", "vm1"),
		text("SYSLOG_IDENTIFIER", "sshd"),
		text("_PID", "42"),
		text("_COMM", "sshd-session"),
		text("MESSAGE", "Server listening on :: port 22."),
		text("PRIORITY", "6"),
	) + entry(
		text("_SOURCE_REALTIME_TIMESTAMP", "1796043911123456"),
		text("_COMM", "logger"),
		text("SYSLOG_PID", "7"),
		text("MESSAGE", "a = b"),
		text("EMPTY", ""),
	)
	got, r := readAll(t, strings.NewReader(stream))
	want := []Entry{
		{Time: t0, Hostname: "vm1", Identifier: "sshd", Comm: "sshd-session", PID: "42", Message: "Server listening on :: port 22."},
		{Time: t0, Comm: "logger", PID: "7", Message: "a = b"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if r.Malformed != 0 {
		t.Errorf("malformed %d, want 0", r.Malformed)
	}
}

func TestReaderBinary(t *testing.T) {
	stream := entry(
		text("SYSLOG_IDENTIFIER", "app"),
		bin("MESSAGE", "two\nlines\x1b[31m\x00"),
		bin("BLOB", "\n\n\x00\xff"), // not kept, and its newlines do not end the entry
		text("_PID", "1"),
	) + entry(text("MESSAGE", "next"))
	got, r := readAll(t, strings.NewReader(stream))
	if len(got) != 2 || got[0].Message != "two\nlines\x1b[31m\x00" || got[0].PID != "1" || got[1].Message != "next" {
		t.Fatalf("got %+v", got)
	}
	if r.Malformed != 0 {
		t.Errorf("malformed %d, want 0", r.Malformed)
	}
}

// journald writes as it likes: an entry may arrive a byte at a time.
func TestReaderSplitReads(t *testing.T) {
	stream := entry(text("SYSLOG_IDENTIFIER", "a"), bin("MESSAGE", "x\ny"), text("_PID", "3")) +
		entry(text("MESSAGE", "second"))
	for name, in := range map[string]io.Reader{
		"one byte": iotest.OneByteReader(strings.NewReader(stream)),
		"half":     iotest.HalfReader(strings.NewReader(stream)),
	} {
		t.Run(name, func(t *testing.T) {
			got, _ := readAll(t, in)
			if len(got) != 2 || got[0].Message != "x\ny" || got[0].PID != "3" || got[1].Message != "second" {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestReaderOversize(t *testing.T) {
	long := strings.Repeat("é", MaxValue) // 2*MaxValue bytes
	t.Run("text", func(t *testing.T) {
		got, _ := readAll(t, strings.NewReader(entry(text("MESSAGE", long), text("_PID", "1"))+entry(text("MESSAGE", "ok"))))
		if len(got) != 2 || !got[0].Cut || len(got[0].Message) > MaxValue || got[0].PID != "1" || got[1].Message != "ok" || got[1].Cut {
			t.Fatalf("got %d entries; first cut %v, %d bytes", len(got), got[0].Cut, len(got[0].Message))
		}
	})
	t.Run("binary", func(t *testing.T) {
		got, _ := readAll(t, strings.NewReader(entry(bin("MESSAGE", long), text("_PID", "1"))+entry(text("MESSAGE", "ok"))))
		if len(got) != 2 || !got[0].Cut || len(got[0].Message) != MaxValue || got[0].PID != "1" || got[1].Message != "ok" {
			t.Fatalf("got %d entries; first cut %v, %d bytes", len(got), got[0].Cut, len(got[0].Message))
		}
	})
	t.Run("an unkept field", func(t *testing.T) {
		got, _ := readAll(t, strings.NewReader(entry(text("MESSAGE", "m"), bin("BIG", long), text("X", long))))
		if len(got) != 1 || got[0].Cut || got[0].Message != "m" {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("a length past MaxBinary", func(t *testing.T) {
		// Taken for garbage: the entry is dropped, the next one read.
		stream := entry(text("MESSAGE", "lost"), binLen("MESSAGE", MaxBinary+1)+"junk\n") + entry(text("MESSAGE", "ok"))
		got, r := readAll(t, strings.NewReader(stream))
		if len(got) != 1 || got[0].Message != "ok" || r.Malformed == 0 {
			t.Fatalf("got %+v, malformed %d", got, r.Malformed)
		}
	})
}

func TestReaderGarbage(t *testing.T) {
	stream := "hello world\n" + // no field
		entry(text("MESSAGE", "kept"), "lower=case\n", "=empty name\n", "1ABC=digit first\n",
			strings.Repeat("N", MaxFieldName+1)+"=too long\n", text("_PID", "9")) +
		"\n\n\n" + // empty entries
		entry(bin("MESSAGE", "no newline after")[:len(bin("MESSAGE", "no newline after"))-1]+"X"+text("_PID", "2")) +
		entry(text("MESSAGE", "last"))
	got, r := readAll(t, strings.NewReader(stream))
	if len(got) != 3 || got[0].Message != "kept" || got[0].PID != "9" ||
		got[1].Message != "no newline after" || got[1].PID != "" || got[2].Message != "last" {
		t.Fatalf("got %+v", got)
	}
	if r.Malformed != 6 {
		t.Errorf("malformed %d, want 6", r.Malformed)
	}
}

func TestReaderEnd(t *testing.T) {
	// A stream that ends without the empty line still gives its last
	// entry; one that ends inside a field gives nothing more.
	got, _ := readAll(t, strings.NewReader(text("MESSAGE", "unterminated")))
	if len(got) != 1 || got[0].Message != "unterminated" {
		t.Fatalf("got %+v", got)
	}
	for _, s := range []string{"MESSAGE=half", "MESSAGE\n\x05\x00", bin("MESSAGE", "abc")[:12], "MESSAGE\n\x05\x00\x00\x00\x00\x00\x00\x00ab"} {
		got, _ := readAll(t, strings.NewReader(s))
		if len(got) != 0 {
			t.Errorf("%q: got %+v", s, got)
		}
	}
	// A read error other than EOF comes through.
	r := NewReader(iotest.ErrReader(io.ErrClosedPipe))
	if _, err := r.Next(); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("got %v", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte(entry(text("MESSAGE", "m"), bin("MESSAGE", "a\nb"), text("_PID", "1"))))
	f.Add([]byte(binLen("MESSAGE", 1<<62) + "\n\n"))
	f.Add([]byte("\n\nA\n\x01\x00\x00\x00\x00\x00\x00\x00\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		for range len(b) + 2 {
			e, err := r.Next()
			if err != nil {
				return
			}
			if len(e.Message) > MaxValue || len(e.Hostname) > MaxValue {
				t.Fatalf("a field of %d bytes", len(e.Message))
			}
			if l := Line(e, t0); strings.Count(l, "\n") != 1 || !strings.HasSuffix(l, "\n") {
				t.Fatalf("not one line: %q", l)
			}
		}
		t.Fatal("more entries than the input can hold")
	})
}
