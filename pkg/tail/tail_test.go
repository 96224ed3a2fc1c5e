package tail

import (
	"bytes"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestLast(t *testing.T) {
	l := []string{"a", "b", "c"}
	for _, tc := range []struct {
		n    int
		want []string
	}{{0, []string{}}, {2, []string{"b", "c"}}, {3, l}, {9, l}, {-1, []string{}}} {
		if got := Last(l, tc.n); !reflect.DeepEqual(append([]string{}, got...), tc.want) {
			t.Errorf("Last(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestLines(t *testing.T) {
	var seen []string
	lt := New(2, 4096, func(l string) { seen = append(seen, l) })
	lt.Write([]byte("one\ntw"))
	lt.Write([]byte("o\r\nthree"))
	lt.Flush()
	if !reflect.DeepEqual(seen, []string{"one", "two", "three"}) || !reflect.DeepEqual(lt.Lines(), []string{"two", "three"}) {
		t.Fatalf("seen %q, kept %q", seen, lt.Lines())
	}
}

// 64 MiB without a newline, written as io.Copy writes it: the partial line
// never grows past maxLine (an old tail copied all of it on every write),
// and the line comes out cut and marked.
func TestLinesBoundsALongLine(t *testing.T) {
	const maxLine = 4096
	var seen []string
	lt := New(3, maxLine, func(l string) { seen = append(seen, l) })
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for range (64 << 20) / len(chunk) {
		if n, err := lt.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if len(lt.partial) > maxLine {
			t.Fatalf("partial line holds %d bytes", len(lt.partial))
		}
	}
	lt.Write([]byte("\nend\r\nlast"))
	lt.Flush()
	want := []string{strings.Repeat("x", maxLine) + CutMark, "end", "last"}
	if strings.Join(seen, "|") != strings.Join(want, "|") || strings.Join(lt.Lines(), "|") != strings.Join(want, "|") {
		t.Fatalf("seen %d lines: %.40q...", len(seen), seen)
	}
}

// A command's stdout and stderr reach the tail from two goroutines (run
// with -race): every line arrives whole.
func TestLinesConcurrentWrites(t *testing.T) {
	var seen []string // emit runs under the tail's lock
	lt := New(5, 4096, func(l string) { seen = append(seen, l) })
	var wg sync.WaitGroup
	for _, s := range []string{"out\n", "err\n"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				lt.Write([]byte(s))
			}
		}()
	}
	wg.Wait()
	lt.Flush()
	if len(seen) != 2000 || len(lt.Lines()) != 5 {
		t.Fatalf("%d lines seen, %d kept", len(seen), len(lt.Lines()))
	}
	for _, l := range seen {
		if l != "out" && l != "err" {
			t.Fatalf("line %q", l)
		}
	}
}
