package guestinit

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeSys makes a /sys/block with the given devices; a value of "" means
// the device has no serial attribute.
func fakeSys(t *testing.T, devs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, serial := range devs {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if serial != "" {
			if err := os.WriteFile(filepath.Join(d, "serial"), []byte(serial), 0o444); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestFindDiskBySerial(t *testing.T) {
	dir := fakeSys(t, map[string]string{
		"loop0": "",
		"vda":   "output\n",
		"vdb":   "bcvk-root\n",
		"vdc":   "bcvk-root-not",
	})
	got, err := findDiskBySerial(dir, "bcvk-root")
	if err != nil || got != "vdb" {
		t.Fatalf("got %q, %v; want vdb", got, err)
	}
	if _, err := findDiskBySerial(dir, "nothing"); err == nil {
		t.Fatal("found a disk that is not there")
	}
	if _, err := findDiskBySerial(filepath.Join(dir, "missing"), "bcvk-root"); err == nil {
		t.Fatal("no error for a missing /sys/block")
	}
}
