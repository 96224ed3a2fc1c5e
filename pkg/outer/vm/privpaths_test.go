package vm

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// victim is a directory standing for /etc: a file and a subdirectory that
// must come through every test untouched.
func victim(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "passwd"), []byte("root"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"vm-1", "a", "b", "c"} {
		if err := os.Mkdir(filepath.Join(d, n), 0o700); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour)
		_ = os.Chtimes(filepath.Join(d, n), old, old)
	}
	return d
}

func untouched(t *testing.T, d string) {
	t.Helper()
	entries, _ := os.ReadDir(d)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if b, _ := os.ReadFile(filepath.Join(d, "passwd")); string(b) != "root" || strings.Join(names, " ") != "a b c passwd vm-1" {
		t.Fatalf("the symlink's target changed: %v, passwd %q", names, b)
	}
}

func plant(t *testing.T, target, link string, uid int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if uid >= 0 {
		if err := os.Lchown(link, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
}

// $XDG_RUNTIME_DIR/bcvk -> /etc: bcvk refuses, and neither makes, removes
// nor writes anything there.
func TestStateBaseRefusesPlantedSymlink(t *testing.T) {
	etc, runtime := victim(t), t.TempDir()
	plant(t, etc, filepath.Join(runtime, "bcvk"), -1)
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	_, err := CurrentHost().StateBase()
	if err == nil || !strings.Contains(err.Error(), filepath.Join(runtime, "bcvk")+": it is a symlink") || !strings.Contains(err.Error(), "unset it") {
		t.Fatalf("got %v", err)
	}
	if _, err := CurrentHost().NewStateDir("vm"); err == nil {
		t.Fatal("made a state directory through the symlink")
	}
	_ = New(nil, CurrentHost()).removeStateDir(filepath.Join(runtime, "bcvk", "vm-1"))
	CurrentHost().RememberKVMUnusable("test")
	untouched(t, etc)
}

// Root with a user's XDG_RUNTIME_DIR (sudo -E): the user's directory is
// refused, with what to do, whatever it holds.
func TestStateBaseAsRootRefusesAUsersRuntimeDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
	etc, runtime := victim(t), t.TempDir()
	if err := os.Chown(runtime, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	plant(t, etc, filepath.Join(runtime, "bcvk"), 1000)
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	_, err := CurrentHost().StateBase()
	if err == nil || !strings.Contains(err.Error(), runtime+": it belongs to uid 1000") || !strings.Contains(err.Error(), "sudo -i") {
		t.Fatalf("got %v", err)
	}
	if _, err := CurrentHost().NewStateDir("vm"); err == nil {
		t.Fatal("made a state directory in another user's runtime dir")
	}
	if err := New(nil, CurrentHost()).removeStateDir(filepath.Join(runtime, "bcvk", "vm-1")); err == nil {
		t.Fatal("removeStateDir went ahead")
	}
	CurrentHost().RememberKVMUnusable("test")
	untouched(t, etc)
}

// The verdict file is never written or read through a symlink: a planted
// kvm-unusable.json.tmp used to be truncated through, and a planted
// verdict believed.
func TestKVMVerdictNeverThroughSymlinks(t *testing.T) {
	etc, runtime, planted := victim(t), t.TempDir(), t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	base, err := CurrentHost().StateBase()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(kvmVerdict{BootID: CurrentHost().BootID, Reason: "planted"})
	if err := os.WriteFile(filepath.Join(planted, "verdict"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	plant(t, filepath.Join(planted, "verdict"), filepath.Join(base, kvmVerdictFile), -1)
	plant(t, filepath.Join(etc, "passwd"), filepath.Join(base, kvmVerdictFile+".tmp"), -1)
	if reason, failed := CurrentHost().KVMVerdict(); failed {
		t.Fatalf("believed a verdict through a symlink: %q", reason)
	}
	CurrentHost().RememberKVMUnusable("nested KVM")
	if reason, failed := CurrentHost().KVMVerdict(); !failed || reason != "nested KVM" {
		t.Fatalf("verdict %q, %v", reason, failed)
	}
	if fi, err := os.Lstat(filepath.Join(base, kvmVerdictFile)); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("verdict file: %v %v", fi, err)
	}
	if b2, _ := os.ReadFile(filepath.Join(planted, "verdict")); string(b2) != string(b) {
		t.Fatal("the planted verdict's target changed")
	}
	untouched(t, etc)
}

// $XDG_CACHE_HOME/bcvk/warm -> /etc: WarmBase refuses, and pruneWarm
// (handed such a path) removes nothing.
func TestWarmRefusesPlantedSymlink(t *testing.T) {
	etc, cache := victim(t), t.TempDir()
	warm := filepath.Join(cache, "bcvk", "warm")
	plant(t, etc, warm, -1)
	t.Setenv("XDG_CACHE_HOME", cache)
	if _, err := CurrentHost().WarmBase(); err == nil || !strings.Contains(err.Error(), warm+": it is a symlink") || !strings.Contains(err.Error(), "XDG_CACHE_HOME") {
		t.Fatalf("got %v", err)
	}
	pruneWarm(warm, 1)
	untouched(t, etc)
}

func TestWarmBaseAsRootRefusesAUsersCache(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
	cache := t.TempDir()
	if err := os.Chown(cache, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", cache)
	if _, err := CurrentHost().WarmBase(); err == nil || !strings.Contains(err.Error(), "belongs to uid 1000") || !strings.Contains(err.Error(), "sudo -i") {
		t.Fatalf("got %v", err)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Fatalf("made %v in another user's cache", entries)
	}
}
