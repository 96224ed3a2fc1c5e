package fdwatch

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const limits = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                20000                files
Max locked memory         8388608              8388608              bytes
`

func TestParseLimit(t *testing.T) {
	if got := ParseLimit([]byte(limits)); got != 20000 {
		t.Fatalf("got %d", got)
	}
	if got := ParseLimit([]byte(strings.ReplaceAll(limits, "20000                20000", "unlimited            unlimited"))); got != 0 {
		t.Fatalf("unlimited: got %d", got)
	}
	if got := ParseLimit(nil); got != 0 {
		t.Fatalf("empty: got %d", got)
	}
}

func TestRead(t *testing.T) {
	// This process, through the real /proc.
	s, err := Read("/proc", os.Getpid())
	if err != nil || s.Open < 3 || s.Limit == 0 {
		t.Fatalf("self: %+v, %v", s, err)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s2, _ := Read("/proc", os.Getpid())
	if s2.Open <= s.Open-1 {
		t.Fatalf("one more open file: %d then %d", s.Open, s2.Open)
	}
	// A fake tree with many descriptors.
	root := t.TempDir()
	fd := filepath.Join(root, "7", "fd")
	if err := os.MkdirAll(fd, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		if err := os.WriteFile(filepath.Join(fd, strings.Repeat("x", 1+i%7)+string(rune('a'+i%26))+itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "7", "limits"), []byte(limits), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Read(root, 7); err != nil || s.Open != 5000 || s.Limit != 20000 {
		t.Fatalf("fake: %+v, %v", s, err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestLevelsAndTracker(t *testing.T) {
	for _, c := range []struct {
		s    Sample
		want Level
	}{
		// 20000 - Headroom = 19360 usable.
		{Sample{100, 20000}, Fine},
		{Sample{9679, 20000}, Fine},
		{Sample{9680, 20000}, Reclaim},
		{Sample{15487, 20000}, Reclaim},
		{Sample{15488, 20000}, High},
		{Sample{18972, 20000}, High},
		{Sample{18973, 20000}, Exhausted},
		// What the guest met with a limit of 3000: a plateau at 2409.
		{Sample{2409, 3000}, Exhausted},
		{Sample{1000, 1000}, Exhausted},
		{Sample{5, 0}, Fine},
	} {
		if got := LevelOf(c.s); got != c.want {
			t.Errorf("LevelOf(%+v) = %d, want %d", c.s, got, c.want)
		}
	}
	var tr Tracker
	steps := []struct {
		open int
		want Level
		rose bool
	}{{10, Fine, false}, {12000, Reclaim, true}, {16500, High, true}, {17000, High, false},
		{12000, Reclaim, false}, {16500, High, false}, // no second warning for the same rise
		{19990, Exhausted, true}, {19995, Exhausted, false}, {100, Fine, false}, {16100, High, true}}
	for _, st := range steps {
		l, rose := tr.Update("root", Sample{st.open, 20000})
		if l != st.want || rose != st.rose {
			t.Errorf("open %d: level %d rose %v, want %d %v", st.open, l, rose, st.want, st.rose)
		}
	}
	if l, rose := tr.Update("bind0", Sample{16500, 20000}); l != High || !rose {
		t.Errorf("another share starts on its own")
	}
	msg := Message("virtiofsd for the image", Sample{16000, 20000}, High)
	for _, want := range []string{"16000 of the 19360 file descriptors it can use for files (limit 20000)", "--root-transport erofs", "bcvk system check"} {
		if !strings.Contains(msg, want) {
			t.Errorf("High message lacks %q: %s", want, msg)
		}
	}
	if msg := Message("virtiofsd for the image", Sample{19990, 20000}, Exhausted); !strings.Contains(msg, "run out of file descriptors") || !strings.Contains(msg, "Too many open files") {
		t.Errorf("Exhausted message: %s", msg)
	}
}
