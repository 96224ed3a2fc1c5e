package journal

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

type failWriter struct{ n int }

func (w *failWriter) Write(b []byte) (int, error) {
	w.n++
	return 0, errors.New("disk full")
}

func TestSinkCap(t *testing.T) {
	var a, b bytes.Buffer
	fail := &failWriter{}
	s := NewSink(100, nil)
	s.Add("a", &a)
	s.Add("fails", fail)
	s.Add("b", &b)
	line := strings.Repeat("x", 39) + "\n" // 40 bytes
	for range 5 {
		s.WriteLine(line)
	}
	want := line + line + CutLine(100)
	if a.String() != want || b.String() != want {
		t.Fatalf("got\n%q\nand\n%q\nwant\n%q", a.String(), b.String(), want)
	}
	if fail.n != 1 {
		t.Errorf("a failed writer was written %d times, want 1", fail.n)
	}
	if s.Dropped() != 3 {
		t.Errorf("dropped %d, want 3", s.Dropped())
	}
}

func TestSinkDefault(t *testing.T) {
	if s := NewSink(0, nil); s.max != DefaultMaxBytes {
		t.Fatalf("max %d", s.max)
	}
	if !strings.Contains(CutLine(DefaultMaxBytes), "64 MiB") {
		t.Fatalf("%q", CutLine(DefaultMaxBytes))
	}
}
