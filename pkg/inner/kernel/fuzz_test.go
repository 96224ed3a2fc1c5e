package kernel

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode"

	"github.com/bcvk/bcvk/pkg/inner/imagefs"
)

// outsideMark is what every file outside the image root holds: the
// container's own files, which must never be taken for the image's.
const outsideMark = "OUTSIDE-THE-IMAGE"

// makeTree builds odd trees from spec, one entry per line: "f PATH" (a
// kernel-sized file), "e PATH" (empty), "d PATH", "p PATH" (a FIFO),
// "l PATH TARGET" ("$OUT" in TARGET is a directory outside root that holds a
// complete image of outsideMark files). At most 20 lines.
func makeTree(t *testing.T, spec string) (root, out string) {
	root, out = t.TempDir(), t.TempDir()
	for _, rel := range []string{"vmlinuz", "usr/lib/modules/6.1/vmlinuz", "usr/lib/modules/6.1/modules.dep",
		"usr/lib/modules/6.1/kernel/fs/fuse/fuse.ko", "boot/vmlinuz-6.1"} {
		p := filepath.Join(out, rel)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		_ = os.WriteFile(p, []byte(outsideMark), 0o644)
	}
	for i, line := range strings.Split(spec, "\n") {
		if i > 20 {
			break
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || strings.Contains(fields[1], "..") {
			continue
		}
		p := filepath.Join(root, filepath.Clean("/"+fields[1]))
		if !strings.HasPrefix(p, root+"/") {
			continue
		}
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		switch fields[0] {
		case "f":
			writeFile(p, "kernel")
		case "e":
			writeFile(p, "")
		case "d":
			_ = os.MkdirAll(p, 0o755)
		case "p":
			_ = syscall.Mkfifo(p, 0o644)
		case "l":
			if len(fields) == 3 {
				_ = os.Symlink(strings.ReplaceAll(fields[2], "$OUT", out), p)
			}
		}
	}
	return root, out
}

// FuzzFind builds odd trees (kernels, empty files, FIFOs, symlinks in and
// out of the root, two kernels, UKIs, /boot only) from the input. Find must
// not panic or hang, and must return non-empty regular files reached
// without leaving the root, or an error that says what it checked and holds
// no control characters.
func FuzzFind(f *testing.F) {
	for _, s := range []string{
		"f usr/lib/modules/6.1/vmlinuz",
		"f usr/lib/modules/6.1/vmlinuz\nf usr/lib/modules/6.2/vmlinuz",
		"e usr/lib/modules/6.1/vmlinuz",
		"l usr/lib/modules/6.1/vmlinuz /boot/vmlinuz-6.1\nf boot/vmlinuz-6.1",
		"l usr/lib/modules/6.1/vmlinuz ../../../../../../etc/passwd",
		"l usr/lib/modules/6.1/vmlinuz vmlinuz",
		"f usr/lib/modules/6.1/linux.efi\nd usr/lib/modules/6.1",
		"l usr/lib/modules/6.1 /usr/lib/modules/6.1",
		"f boot/vmlinuz-6.1",
		"l usr/lib/modules/6.1 $OUT/usr/lib/modules/6.1",
		"l usr $OUT/usr",
		"l usr/lib/modules/6.1/vmlinuz ../../../../../../../../../../$OUT/vmlinuz",
		"l usr/lib/modules/6.1/vmlinuz b/vmlinuz\nl usr/lib/modules/6.1/b $OUT",
		"l usr/lib/modules/6.1/vmlinuz /dev/zero",
		"p usr/lib/modules/6.1/vmlinuz",
		"f usr/lib/modules/6.1/initramfs.img\nl usr/lib/modules/6.1/vmlinuz initramfs.img",
		"f usr/lib/modules/6.1\x1b[2J/vmlinuz",
		"l usr/lib/modules/6.1/vmlinuz /a\nl a /b\nl b /a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		root, _ := makeTree(t, spec)
		k, err := Find(root)
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, "checked") && !strings.Contains(msg, "reading") {
				t.Fatalf("error without what was checked: %v", err)
			}
			if strings.ContainsFunc(msg, unicode.IsControl) {
				t.Fatalf("error with control characters: %q", msg)
			}
			return
		}
		for _, p := range []string{k.Image, k.Initramfs} {
			if p != "" {
				checkInside(t, root, p)
			}
		}
		if k.Version == "" || imagefs.Quote(k.Version) != k.Version || k.Root != root ||
			k.ModulesDir != "/usr/lib/modules/"+k.Version {
			t.Fatalf("bad kernel %+v", k)
		}
	})
}

// checkInside fails unless p is a non-empty regular file of the image at
// root, no component of it a symlink, and not one of the files outside.
func checkInside(t *testing.T, root, p string) {
	t.Helper()
	if !strings.HasPrefix(p, root+"/") {
		t.Fatalf("%s is outside the image root %s", p, root)
	}
	for q := p; q != root; q = filepath.Dir(q) {
		if fi, err := os.Lstat(q); err != nil || fi.Mode()&os.ModeSymlink != 0 {
			t.Fatalf("%s: %s is a symlink or missing (%v)", p, q, err)
		}
	}
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		t.Fatalf("%s is not a non-empty regular file: %v", p, err)
	}
	if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(outsideMark)) {
		t.Fatalf("%s is a file from outside the image", p)
	}
}

// writeFile writes without blocking on a FIFO that an earlier line made.
func writeFile(p, data string) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		return
	}
	_, _ = f.WriteString(data)
	_ = f.Close()
}
