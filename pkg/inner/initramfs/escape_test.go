package initramfs

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const modDir = "/usr/lib/modules/6.1"

// secret is what a file of the container (the SSH key, a saved VM) holds.
var secret = []byte("SECRET-OF-THE-CONTAINER")

// imageTree makes an image root with files below modDir and a directory
// outside it that holds secret files, one laid out like a modules dir. In
// files, a value "-> TARGET" makes a symlink ("$OUT" in TARGET is the
// outside directory), "|" a FIFO, and anything else a file with that
// content.
func imageTree(t *testing.T, files map[string]string) (root, out string) {
	t.Helper()
	root, out = t.TempDir(), t.TempDir()
	for rel, data := range map[string]string{
		"secret.ko": string(secret), "mods/modules.dep": "kernel/fuse.ko:\n", "mods/kernel/fuse.ko": string(secret),
	} {
		mkfile(t, filepath.Join(out, rel), data)
	}
	for rel, data := range files {
		p := filepath.Join(root, modDir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasPrefix(data, "-> "):
			err = os.Symlink(strings.ReplaceAll(data[3:], "$OUT", out), p)
		case data == "|":
			err = syscall.Mkfifo(p, 0o644)
		default:
			err = os.WriteFile(p, []byte(data), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root, out
}

func mkfile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// buildSafely fails the test if Build hangs (a FIFO) instead of refusing.
func buildSafely(t *testing.T, root string, plain []byte) ([]byte, error) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := buildIn(t, root, modDir, plain)
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		if bytes.Contains(r.b, secret) {
			t.Fatalf("a file from outside the image root is in the initramfs (error %v)", r.err)
		}
		return r.b, r.err
	// A guard against a hang, not a speed limit: decompressing 64 MiB under
	// the race detector on a loaded machine took more than 10 s.
	case <-time.After(2 * time.Minute):
		t.Fatal("Build hung")
	}
	return nil, nil
}

// A modules dir that links out of the image is followed inside it, where
// nothing is: no modules, and none of the container's files.
func TestBuildModulesDirLinkOutside(t *testing.T) {
	root, out := imageTree(t, nil)
	if err := os.MkdirAll(filepath.Join(root, filepath.Dir(modDir)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(out, "mods"), filepath.Join(root, modDir)); err != nil {
		t.Fatal(err)
	}
	if _, err := buildSafely(t, root, nil); err != nil {
		t.Fatal(err)
	}
}

// A module that links to a container file, absolutely or with enough "..",
// is looked up inside the image and not found.
func TestBuildModuleLinkOutside(t *testing.T) {
	for name, target := range map[string]string{
		"absolute": "-> $OUT/secret.ko",
		"relative": "-> " + strings.Repeat("../", 40) + "$OUT/secret.ko",
	} {
		t.Run(name, func(t *testing.T) {
			root, _ := imageTree(t, map[string]string{"modules.dep": "kernel/fuse.ko:\n", "kernel/fuse.ko": target})
			_, err := buildSafely(t, root, nil)
			if err == nil || !strings.Contains(err.Error(), "kernel/fuse.ko") {
				t.Fatalf("want an error naming kernel/fuse.ko, got %v", err)
			}
		})
	}
}

// depmod never writes "..": such a modules.dep line is refused.
func TestBuildModulesDepDotDot(t *testing.T) {
	root, out := imageTree(t, nil)
	dep := "kernel/fuse.ko: " + strings.Repeat("../", 40) + out + "/secret.ko\n"
	mkfile(t, filepath.Join(root, modDir, "modules.dep"), dep)
	mkfile(t, filepath.Join(root, modDir, "kernel/fuse.ko"), "FUSE")
	_, err := buildSafely(t, root, nil)
	if err == nil || !strings.Contains(err.Error(), "modules.dep names the module") {
		t.Fatalf("want the modules.dep line refused, got %v", err)
	}
}

// A module that is a FIFO or a link to /dev/zero is refused at once: no
// hang, no endless read.
func TestBuildModuleNotRegular(t *testing.T) {
	for name, tc := range map[string]struct{ file, want string }{
		"fifo":     {"|", "is not a regular file"},
		"dev-zero": {"-> /dev/zero", "no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			root, _ := imageTree(t, map[string]string{"modules.dep": "kernel/fuse.ko:\n", "kernel/fuse.ko": tc.file})
			_, err := buildSafely(t, root, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
		})
	}
}

// A huge depmod index is refused, not read into memory.
func TestBuildHugeIndex(t *testing.T) {
	for _, name := range []string{"modules.builtin", "modules.dep"} {
		t.Run(name, func(t *testing.T) {
			root, _ := imageTree(t, map[string]string{"kernel/fuse.ko": "FUSE", name: ""})
			// Sparse: 1 GiB that takes no disk.
			if err := os.Truncate(filepath.Join(root, modDir, name), 1<<30); err != nil {
				t.Fatal(err)
			}
			_, err := buildSafely(t, root, nil)
			if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "larger than the 8 MiB") {
				t.Fatalf("want %s refused as too large, got %v", name, err)
			}
		})
	}
}

// A module that decompresses to more than the cap is refused, whatever
// decompresses it.
func TestBuildDecompressionBomb(t *testing.T) {
	// gzip members one after the other decompress as one stream: 65 MiB
	// from one compressed MiB, repeated.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	bomb := bytes.Repeat(gz.Bytes(), 65)
	for _, file := range []string{"kernel/fuse.ko.gz", "kernel/fuse.ko.xz"} {
		t.Run(filepath.Ext(file), func(t *testing.T) {
			root, _ := imageTree(t, map[string]string{"modules.dep": file + ":\n", file: string(bomb)})
			_, err := buildSafely(t, root, make([]byte, 65<<20))
			if err == nil || !strings.Contains(err.Error(), "larger than the 64 MiB") {
				t.Fatalf("want the module refused as too large, got %v", err)
			}
		})
	}
}
