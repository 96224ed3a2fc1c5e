package privdir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func mkdir(t *testing.T, p string, mode os.FileMode) string {
	t.Helper()
	if err := os.Mkdir(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func TestEnsureMakesAndTightens(t *testing.T) {
	root := t.TempDir()
	got, err := Ensure(root, "bcvk/warm", 0o700)
	if err != nil || got != filepath.Join(root, "bcvk/warm") {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, p := range []string{filepath.Join(root, "bcvk"), got} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode() != os.ModeDir|0o700 {
			t.Fatalf("%s: %v %v", p, fi.Mode(), err)
		}
	}
	if err := os.Chmod(got, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(root, "bcvk/warm", 0o700); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(got); fi.Mode().Perm() != 0o700 {
		t.Fatalf("not tightened: %v", fi.Mode())
	}
	// A missing directory above is made too (~/.cache on a fresh account).
	if _, err := Ensure(filepath.Join(root, "home", ".cache"), "bcvk", 0o700); err != nil {
		t.Fatal(err)
	}
}

func TestEnsureChecksEveryComponent(t *testing.T) {
	root := t.TempDir()
	elsewhere := mkdir(t, filepath.Join(root, "elsewhere"), 0o700)
	sticky := mkdir(t, filepath.Join(root, "tmp"), os.ModeSticky|0o777)
	open := mkdir(t, filepath.Join(root, "open"), 0o777)
	linkAbove := filepath.Join(root, "link-above")
	if err := os.Symlink("elsewhere", linkAbove); err != nil {
		t.Fatal(err)
	}
	planted := mkdir(t, filepath.Join(root, "planted"), 0o700)
	if err := os.Symlink(elsewhere, filepath.Join(planted, "bcvk")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		base, sub, err string
	}{
		{sticky, "bcvk-0", ""},  // like /tmp
		{linkAbove, "bcvk", ""}, // our own symlink above bcvk's levels
		{open, "bcvk", "others can write to it (mode 0777)"},
		{planted, "bcvk", "it is a symlink, not a directory bcvk made (remove it"},
		{planted, "bcvk/warm", "it is a symlink"},
		{filepath.Join(planted, "bcvk"), "x", ""}, // a symlink above is ours here
	} {
		_, err := Ensure(c.base, c.sub, 0o700)
		if (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("Ensure(%s, %s) = %v; want %q", c.base, c.sub, err, c.err)
		}
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 2 { // bcvk and x
		t.Fatalf("elsewhere holds %v", entries)
	}
}

// Root with a user's environment (sudo -E): that user's directories,
// symlinks and group-writable directories are refused, and nothing is made
// where their symlinks point.
func TestEnsureAsRootRefusesAnotherUsersPaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
	root := t.TempDir()
	target := mkdir(t, filepath.Join(root, "etc"), 0o755)
	user := mkdir(t, filepath.Join(root, "user"), 0o700)
	link := filepath.Join(root, "runtime")
	if err := os.Symlink(user, link); err != nil {
		t.Fatal(err)
	}
	groupW := mkdir(t, filepath.Join(root, "group"), 0o770)
	theirs := mkdir(t, filepath.Join(root, "mine"), 0o700)
	mkdir(t, filepath.Join(theirs, "bcvk"), 0o700)
	for _, c := range []struct {
		path     string
		uid, gid int
	}{{user, 1000, 1000}, {link, 1000, 1000}, {groupW, 0, 1000}, {filepath.Join(theirs, "bcvk"), 1000, 1000}} {
		if err := os.Lchown(c.path, c.uid, c.gid); err != nil {
			t.Fatal(err)
		}
	}
	planted := mkdir(t, filepath.Join(root, "planted"), 0o700)
	if err := os.Symlink(target, filepath.Join(planted, "bcvk")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(planted, "bcvk"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ base, err string }{
		{user, "it belongs to uid 1000, not to you (uid 0) or root"},
		{link, "it is a symlink owned by uid 1000"},
		{groupW, "others can write to it (mode 0770)"},
		{theirs, "it belongs to uid 1000, not to you (uid 0)"},
		{planted, "it is a symlink"},
	} {
		if _, err := Ensure(c.base, "bcvk", 0o700); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("Ensure(%s) = %v; want %q", c.base, err, c.err)
		}
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Fatalf("made %v in the symlink's target", entries)
	}
	if err := Owned(filepath.Join(theirs, "bcvk")); err == nil {
		t.Fatal("another user's directory counts as owned")
	}
}

func TestCreateAndReadFileNeverFollow(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateFile(dir, "link", 0o600); err == nil {
		t.Fatal("created through a symlink")
	}
	if _, err := ReadFile(dir, "link", 100); err == nil {
		t.Fatal("read through a symlink")
	}
	if b, _ := os.ReadFile(secret); string(b) != "secret" {
		t.Fatalf("target changed: %q", b)
	}
	f, err := CreateFile(dir, "new", 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("0123456789")
	f.Close()
	if _, err := CreateFile(dir, "new", 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("an existing file was opened: %v", err)
	}
	if b, err := ReadFile(dir, "new", 4); err != nil || string(b) != "0123" {
		t.Fatalf("got %q, %v", b, err)
	}
	// A FIFO would block a plain open for reading.
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadFile(dir, "fifo", 100); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read a FIFO")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadFile blocked on a FIFO")
	}
}
