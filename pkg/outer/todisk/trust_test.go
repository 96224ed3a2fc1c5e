package todisk

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var testKey = Key{Version: 1, ImageDigest: "sha256:a", ImageRef: "img", Format: "raw", DiskSize: 4 << 30, KernelArgs: []string{}}

// A disk carrying the right key is reused only when it is a regular file
// that only this user can change.
func TestDecideReusesOnlyOwnFiles(t *testing.T) {
	dir := t.TempDir()
	disk := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("disk"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		setKey(t, p, testKey)
		return p
	}
	if v, err := Decide(disk("mine.raw", 0o644), testKey); err != nil || v.Decision != Reuse {
		t.Fatalf("own disk: %+v %v", v, err)
	}
	if v, err := Decide(disk("shared.raw", 0o666), testKey); err != nil || v.Decision != Foreign || !strings.Contains(v.Why, "others can write to it (mode 0666)") {
		t.Fatalf("a disk others can write was trusted: %+v %v", v, err)
	}
	link := filepath.Join(dir, "link.raw")
	if err := os.Symlink(disk("target.raw", 0o644), link); err != nil {
		t.Fatal(err)
	}
	if v, err := Decide(link, testKey); err != nil || v.Decision != Foreign || !strings.Contains(v.Why, "symbolic link") {
		t.Fatalf("a symlink was trusted: %+v %v", v, err)
	}
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	other := disk("other.raw", 0o644)
	if err := os.Lchown(other, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if v, err := Decide(other, testKey); err != nil || v.Decision != Foreign || !strings.Contains(v.Why, "belongs to uid 1000") {
		t.Fatalf("another user's disk was trusted: %+v %v", v, err)
	}
}

// The runner container can write in the work directory: a symlink it
// planted at the disk's name is neither followed nor moved to DISK.
func TestFinishRefusesSymlinkInWorkDir(t *testing.T) {
	work, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(work, "disk.raw")); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(outside, "out.raw")
	err := finish(work, "disk.raw", dest, testKey)
	if err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Lstat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("something was moved to DISK: %v", err)
	}
	if b, _ := os.ReadFile(secret); string(b) != "secret" {
		t.Fatalf("the symlink's target changed: %q", b)
	}
	if _, err := unix.Getxattr(secret, XattrName, make([]byte, 64)); !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
		t.Fatalf("the key was written through the symlink: %v", err)
	}
}

// A finished disk is moved into place with its key, and without the write
// bits for others that would stop its reuse.
func TestFinishMovesDiskIntoPlace(t *testing.T) {
	work, outside := t.TempDir(), t.TempDir()
	p := filepath.Join(work, "disk.raw")
	if err := os.WriteFile(p, []byte("disk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, os.ModeSetuid|0o777); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(outside, "out.raw")
	if err := finish(work, "disk.raw", dest, testKey); errors.Is(err, unix.ENOTSUP) {
		t.Skip("no user xattrs")
	} else if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(dest)
	if err != nil || fi.Mode() != 0o644 {
		t.Fatalf("DISK: %v %v", fi, err)
	}
	if v, err := Decide(dest, testKey); err != nil || v.Decision != Reuse {
		t.Fatalf("the finished disk is not reused: %+v %v", v, err)
	}
}
