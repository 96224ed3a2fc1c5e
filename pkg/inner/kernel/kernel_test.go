package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, root, rel, data string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindOne(t *testing.T) {
	root := t.TempDir()
	write(t, root, "usr/lib/modules/6.12.0/vmlinuz", "k")
	write(t, root, "usr/lib/modules/6.12.0/initramfs.img", "i")
	k, err := Find(root)
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "6.12.0" || k.Image != filepath.Join(root, "usr/lib/modules/6.12.0/vmlinuz") || k.Initramfs == "" {
		t.Fatalf("got %+v", k)
	}
}

func TestFindNone(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/os-release", "x")
	_, err := Find(root)
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("want NotFoundError, got %v", err)
	}
	for _, p := range []string{"/usr/lib/modules/*/vmlinuz", "/boot/EFI/Linux/*.efi", "/boot/vmlinuz*"} {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name %s", err, p)
		}
	}
}

func TestFindTwo(t *testing.T) {
	root := t.TempDir()
	write(t, root, "usr/lib/modules/6.1/vmlinuz", "k")
	write(t, root, "usr/lib/modules/6.2/vmlinuz", "k")
	_, err := Find(root)
	if err == nil || !strings.Contains(err.Error(), "found 2 kernels (6.1, 6.2)") {
		t.Fatalf("got %v", err)
	}
}

func TestFindEmptyFileAndBootOnly(t *testing.T) {
	root := t.TempDir()
	write(t, root, "usr/lib/modules/6.1/vmlinuz", "")
	write(t, root, "boot/vmlinuz-6.1", "k")
	_, err := Find(root)
	if err == nil || !strings.Contains(err.Error(), "found only /boot/vmlinuz-6.1") {
		t.Fatalf("got %v", err)
	}
}

func TestFindUKIOnly(t *testing.T) {
	root := t.TempDir()
	write(t, root, "boot/EFI/Linux/x.efi", "u")
	_, err := Find(root)
	if err == nil || !strings.Contains(err.Error(), "unified kernel images (/boot/EFI/Linux/x.efi)") {
		t.Fatalf("got %v", err)
	}
}

// An absolute symlink is resolved inside the image, not in the container.
func TestFindAbsoluteSymlink(t *testing.T) {
	root := t.TempDir()
	write(t, root, "boot/vmlinuz-6.1", "kernel")
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/modules/6.1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/boot/vmlinuz-6.1", filepath.Join(root, "usr/lib/modules/6.1/vmlinuz")); err != nil {
		t.Fatal(err)
	}
	k, err := Find(root)
	if err != nil {
		t.Fatal(err)
	}
	if k.Image != filepath.Join(root, "boot/vmlinuz-6.1") {
		t.Fatalf("got %s", k.Image)
	}
}

// link makes rel in root a symlink to target.
func link(t *testing.T, root, rel, target string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// A kernel reached through a directory symlink that leaves the image is
// the container's file, not the image's: it must not be found.
func TestFindDirLinkOutside(t *testing.T) {
	for name, setup := range map[string]func(root, out string){
		"modules dir": func(root, out string) { link(t, root, "usr/lib/modules/6.1", out) },
		"usr":         func(root, out string) { link(t, root, "usr", out+"/usr") },
		"middle of the vmlinuz link": func(root, out string) {
			link(t, root, "usr/lib/modules/6.1/vmlinuz", "sub/vmlinuz")
			link(t, root, "usr/lib/modules/6.1/sub", out)
		},
	} {
		t.Run(name, func(t *testing.T) {
			root, out := t.TempDir(), t.TempDir()
			write(t, out, "vmlinuz", "container file")
			write(t, out, "usr/lib/modules/6.1/vmlinuz", "container file")
			setup(root, out)
			k, err := Find(root)
			var nf *NotFoundError
			if !errors.As(err, &nf) {
				t.Fatalf("want NotFoundError, got %+v, %v", k, err)
			}
		})
	}
}

// Names from the image reach messages quoted, never as raw control
// characters, and such a version is not taken.
func TestFindQuotesNames(t *testing.T) {
	root := t.TempDir()
	write(t, root, "usr/lib/modules/6.1\x1b[2J/vmlinuz", "k")
	write(t, root, "boot/vmlinuz-\n6.1", "k")
	_, err := Find(root)
	if err == nil || strings.ContainsAny(err.Error(), "\x1b\n") {
		t.Fatalf("want an error without control characters, got %q", err)
	}
	if !strings.Contains(err.Error(), `"/usr/lib/modules/6.1\x1b[2J" (not a kernel version name)`) {
		t.Fatalf("error %q does not name the refused version", err)
	}
}

// A FIFO where the kernel should be is skipped without blocking.
func TestFindFIFO(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/modules/6.1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "usr/lib/modules/6.1/vmlinuz"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Find(root)
	if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
		t.Fatalf("got %v", err)
	}
}
