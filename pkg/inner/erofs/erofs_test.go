package erofs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const id1 = "f7df2c1752965646c9b9160f89be67d7c7fd4295bbbbf5032530f224736f5dfb"

func TestMkfsArgs(t *testing.T) {
	got := MkfsArgs("/bcvk/erofs/.x.tmp", "/bcvk/image", id1)
	want := []string{"--quiet", "-T0", "--mkfs-time", "--preserve-mtime", "-U", "f7df2c17-5296-5646-c9b9-160f89be67d7", "/bcvk/erofs/.x.tmp", "/bcvk/image"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// fakeBuild writes the output file named in argv (the second last
// argument), slowly, and counts the builds.
func fakeBuild(n *atomic.Int32, delay time.Duration, fail bool) func(context.Context, []string) error {
	return func(ctx context.Context, argv []string) error {
		n.Add(1)
		out := argv[len(argv)-2]
		if err := os.WriteFile(out, []byte("partial"), 0o644); err != nil {
			return err
		}
		time.Sleep(delay)
		if fail {
			return errors.New("mkfs.erofs: exit status 1: no space left on device")
		}
		return os.WriteFile(out, []byte("EROFS"), 0o644)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func TestEnsureBuildsOnceForConcurrentVMs(t *testing.T) {
	dir := t.TempDir()
	var builds, waits atomic.Int32
	c := Cache{Dir: dir, MaxBytes: 1 << 30, Build: fakeBuild(&builds, 300*time.Millisecond, false),
		Waiting: func() { waits.Add(1) }}
	var wg sync.WaitGroup
	built := make([]bool, 3)
	for i := range built {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, b, err := c.Ensure(context.Background(), id1, "/src")
			if err != nil || p != filepath.Join(dir, id1+".erofs") {
				t.Errorf("Ensure: %q %v", p, err)
			}
			built[i] = b
		}()
	}
	wg.Wait()
	if builds.Load() != 1 {
		t.Fatalf("%d builds, want 1", builds.Load())
	}
	n := 0
	for _, b := range built {
		if b {
			n++
		}
	}
	if n != 1 || waits.Load() == 0 {
		t.Fatalf("built by %d callers, %d waited", n, waits.Load())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, id1+".erofs")); string(b) != "EROFS" {
		t.Fatalf("content %q", b)
	}
	// Only the image and its lock: no temporary file.
	if got := names(t, dir); !reflect.DeepEqual(got, []string{"." + id1 + ".lock", id1 + ".erofs"}) {
		t.Fatalf("cache holds %q", got)
	}
	// Used again: no build, and touched.
	old := time.Now().Add(-time.Hour)
	_ = os.Chtimes(c.Path(id1), old, old)
	if _, b, err := c.Ensure(context.Background(), id1, "/src"); err != nil || b {
		t.Fatalf("second use built=%v err=%v", b, err)
	}
	if fi, _ := os.Stat(c.Path(id1)); fi.ModTime().Before(time.Now().Add(-time.Minute)) {
		t.Fatal("a use did not touch the cached image")
	}
}

func TestEnsureFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	var builds atomic.Int32
	c := Cache{Dir: dir, MaxBytes: 1 << 30, Build: fakeBuild(&builds, 0, true)}
	_, _, err := c.Ensure(context.Background(), id1, "/src")
	if err == nil || !strings.Contains(err.Error(), "building the EROFS image of the root") || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("err = %v", err)
	}
	for _, n := range names(t, dir) {
		if strings.Contains(n, ".erofs") {
			t.Fatalf("left %s behind", n)
		}
	}
	if c.Cached(id1) {
		t.Fatal("a failed build counts as cached")
	}
}

func TestEnsureRemovesAKilledBuildsTemp(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "."+id1+".erofs.tmp-12345")
	if err := os.WriteFile(stale, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	var builds atomic.Int32
	c := Cache{Dir: dir, MaxBytes: 1 << 30, Build: fakeBuild(&builds, 0, false)}
	if _, _, err := c.Ensure(context.Background(), id1, "/src"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatal("the killed build's temporary file is still there")
	}
}

func TestEnsureWaitEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	c := Cache{Dir: dir, MaxBytes: 1 << 30}
	unlock, err := c.lock(context.Background(), id1)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, _, err := c.Ensure(ctx, id1, "/src"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestEvictLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	c := Cache{Dir: dir, MaxBytes: 25}
	now := time.Now()
	mk := func(id string, size int, age time.Duration) {
		p := c.Path(id)
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(p, now.Add(-age), now.Add(-age))
	}
	mk("a", 10, 4*time.Hour) // oldest
	mk("b", 10, 3*time.Hour)
	mk("c", 1, 5*time.Hour) // small but oldest: LRU removes it too
	mk("d", 10, 2*time.Hour)
	mk("new", 10, 0)
	_ = os.WriteFile(filepath.Join(dir, ".other.lock"), nil, 0o600)
	_ = os.WriteFile(filepath.Join(dir, "notes.txt"), make([]byte, 100), 0o600)
	c.Evict("new")
	got := names(t, dir)
	want := []string{".other.lock", "d.erofs", "new.erofs", "notes.txt"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("left %q, want %q", got, want)
	}
	// The image in use stays even when it alone is over the cap.
	c.MaxBytes = 5
	c.Evict("new")
	if got := names(t, dir); !reflect.DeepEqual(got, []string{".other.lock", "new.erofs", "notes.txt"}) {
		t.Fatalf("left %q", got)
	}
}
