package vm

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRemoveWarmCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	base, err := CurrentHost().WarmBase()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"aaa", "bbb", ".saving-ccc"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, d, "state"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n, err := CurrentHost().RemoveWarmCache()
	if err != nil || n != 2 {
		t.Fatalf("removed %d, %v", n, err)
	}
	entries, _ := os.ReadDir(base)
	if len(entries) != 1 || entries[0].Name() != ".saving-ccc" {
		t.Fatalf("left %v: a save being written must stay", entries)
	}
}
