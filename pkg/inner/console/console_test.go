package console

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/consolelog"
)

// xs is a reader of n bytes of 'x' and no newline, made on the fly.
type xs struct{ n int }

func (r *xs) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	r.n -= k
	return k, nil
}

// A guest that never prints a newline must not grow the watcher's memory:
// the kept line is capped, and the line still arrives.
func TestCopyLongLineIsBounded(t *testing.T) {
	w := New(5)
	var got []string
	w.OnLine = func(l string) { got = append(got, l) }
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w.Copy(io.MultiReader(&xs{n: 256 << 20}, strings.NewReader("\nnext\n")), io.Discard)
	runtime.ReadMemStats(&after)
	if len(got) != 2 || len(got[0]) != MaxLine || got[1] != "next" {
		t.Fatalf("lines: %d, first %d bytes, second %q", len(got), len(got[0]), got[len(got)-1])
	}
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 16<<20 {
		t.Fatalf("heap grew by %d MiB for one long line", grown>>20)
	}
}

func TestCopyLinesAndTail(t *testing.T) {
	w := New(2)
	var out bytes.Buffer
	var lines []string
	w.OnLine = func(l string) { lines = append(lines, l) }
	w.Copy(strings.NewReader("\x1b[0;32mone\x1b[0m\r\ntwo\nthree"), &out)
	if out.String() != "\x1b[0;32mone\x1b[0m\r\ntwo\nthree" {
		t.Fatalf("the log must get the raw bytes: %q", out.String())
	}
	if strings.Join(lines, "|") != "one|two|three" || strings.Join(w.Tail(), "|") != "two|three" {
		t.Fatalf("lines %q, tail %q", lines, w.Tail())
	}
}

// The log keeps its last part: at most two parts of max bytes, the newest
// text always in PATH, the part before in PATH.1.
func TestLogFileRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	l, err := OpenLog(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 1000; i++ {
		if _, err := l.Write([]byte("line " + strings.Repeat("y", i%7) + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Write([]byte("last\n")); err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(path)
	old, _ := os.ReadFile(consolelog.RotatedPath(path))
	if len(cur) > 100 || len(old) > 100 || len(old) == 0 {
		t.Fatalf("parts of %d and %d bytes, cap 100", len(cur), len(old))
	}
	if !strings.HasSuffix(string(cur), "last\n") {
		t.Fatalf("newest text not at the end: %q", cur)
	}
	// one write larger than the cap keeps its end
	if _, err := l.Write([]byte(strings.Repeat("z", 150) + "END")); err != nil {
		t.Fatal(err)
	}
	if cur, _ = os.ReadFile(path); len(cur) != 100 || !strings.HasSuffix(string(cur), "END") {
		t.Fatalf("oversized write: %d bytes %q", len(cur), cur[len(cur)-5:])
	}
	// a new boot empties both parts
	if err := l.Reset(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("after reset: %v %v", fi, err)
	}
	if _, err := os.Stat(consolelog.RotatedPath(path)); !os.IsNotExist(err) {
		t.Fatalf("rotated part kept after reset: %v", err)
	}
}

// The log is in a directory the host shares: a symlink planted at its name
// is not followed.
func TestLogFileRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "console.log")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLog(path, 100); err == nil {
		t.Fatal("a symlinked console log was opened")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Fatalf("target changed: %q", b)
	}
}
