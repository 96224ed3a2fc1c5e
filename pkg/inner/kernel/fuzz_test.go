package kernel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzFind builds odd trees (kernels, empty files, symlinks in and out of
// the root, two kernels, UKIs, /boot only) from the input, one entry per
// line: "f PATH" (a kernel-sized file), "e PATH" (empty), "l PATH TARGET",
// "d PATH". Find must not panic, must return a non-empty regular file inside
// the root, or an error that says what it checked.
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
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		root := t.TempDir()
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
				_ = os.WriteFile(p, []byte("kernel"), 0o644)
			case "e":
				_ = os.WriteFile(p, nil, 0o644)
			case "d":
				_ = os.MkdirAll(p, 0o755)
			case "l":
				if len(fields) == 3 {
					_ = os.Symlink(fields[2], p)
				}
			}
		}
		k, err := Find(root)
		if err != nil {
			if !strings.Contains(err.Error(), "checked") && !strings.Contains(err.Error(), "reading") {
				t.Fatalf("error without what was checked: %v", err)
			}
			return
		}
		if !strings.HasPrefix(k.Image, root+"/") {
			t.Fatalf("kernel %s is outside the image root %s", k.Image, root)
		}
		fi, err := os.Stat(k.Image)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
			t.Fatalf("kernel %s is not a non-empty file: %v", k.Image, err)
		}
		if k.Version == "" || strings.Contains(k.Version, "/") {
			t.Fatalf("bad version %q", k.Version)
		}
	})
}
