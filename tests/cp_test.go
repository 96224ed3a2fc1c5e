package tests

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// copyTreeLines describes a tree as find's "-printf '%m %y %p -> %l\n'"
// does, sorted, and the regular files' contents as sha256sum's lines, so
// that host and guest trees compare as text.
func copyTreeLines(t *testing.T, dir string) (listing, sums string) {
	t.Helper()
	var ls, ss []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		typ, target := "f", ""
		switch {
		case fi.IsDir():
			typ = "d"
		case fi.Mode()&fs.ModeSymlink != 0:
			typ = "l"
			target, _ = os.Readlink(p)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			ss = append(ss, fmt.Sprintf("%x  ./%s", sha256.Sum256(b), rel))
		}
		perm := fi.Mode().Perm()
		if typ == "l" {
			perm = 0o777
		}
		ls = append(ls, fmt.Sprintf("%o %s ./%s -> %s", perm, typ, rel, target))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ls)
	sort.Strings(ss)
	return strings.Join(ls, "\n") + "\n", strings.Join(ss, "\n") + "\n"
}

// checkCopy checks `ephemeral cp` against the running VM name: a host tree
// into the guest and back out, modes and contents kept, and its failures.
func checkCopy(t *testing.T, stateDir, name string) {
	t.Helper()
	// Under TCG on a busy host the guest's SSH moves about 150 KB/s.
	bcvk := func(t *testing.T, args ...string) result {
		return runBcvk(t, stateDir, nil, 4*time.Minute, args...)
	}
	ssh := func(t *testing.T, script string) result {
		return bcvk(t, "ephemeral", "ssh", name, "--", "sh", "-c", script)
	}
	host := t.TempDir()
	src := filepath.Join(host, "tree")
	files := []struct {
		path string
		mode fs.FileMode
		body string
	}{
		{"private", 0o600, "secret\n"},
		{"run.sh", 0o755, "#!/bin/sh\necho run\n"},
		{"with space.txt", 0o644, "spaced out\n"},
		{"sub/deeper/nested", 0o644, strings.Repeat("nested ", 10000)},
	}
	for _, f := range files {
		p := filepath.Join(src, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.body), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/deeper/nested", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	wantList, wantSums := copyTreeLines(t, src)
	const guestDir = "/tmp/bcvk-cp-test"

	t.Run("into-guest", func(t *testing.T) {
		if r := bcvk(t, "ephemeral", "cp", "-r", src, name+":"+guestDir); r.code != 0 {
			t.Fatalf("cp -r into the guest: exit %d: %s", r.code, r.stderr)
		}
		r := ssh(t, "cd "+guestDir+" && find . -mindepth 1 -printf '%m %y %p -> %l\\n' | LC_ALL=C sort")
		if got := r.stdout; got != wantList {
			t.Errorf("guest tree:\n%s\nwant:\n%s", got, wantList)
		}
		r = ssh(t, "cd "+guestDir+" && find . -type f -exec sha256sum {} + | LC_ALL=C sort")
		if got := r.stdout; got != wantSums {
			t.Errorf("guest contents:\n%s\nwant:\n%s", got, wantSums)
		}
		// One file, into the login user's home (a relative guest path).
		if r := bcvk(t, "ephemeral", "cp", filepath.Join(src, "with space.txt"), name+":."); r.code != 0 {
			t.Fatalf("cp of a file into the home: exit %d: %s", r.code, r.stderr)
		}
		if r := ssh(t, "stat -c '%a %n' ~/'with space.txt' && cat ~/'with space.txt'"); !strings.HasSuffix(r.stdout, "with space.txt\nspaced out\n") || !strings.HasPrefix(r.stdout, "644 ") {
			t.Errorf("file in the home: %q", r.stdout)
		}
	})
	t.Run("out-of-guest", func(t *testing.T) {
		back := filepath.Join(host, "back")
		if err := os.Mkdir(back, 0o755); err != nil {
			t.Fatal(err)
		}
		if r := bcvk(t, "ephemeral", "cp", "-r", name+":"+guestDir, back); r.code != 0 {
			t.Fatalf("cp -r out of the guest: exit %d: %s", r.code, r.stderr)
		}
		gotList, gotSums := copyTreeLines(t, filepath.Join(back, filepath.Base(guestDir)))
		if gotList != wantList || gotSums != wantSums {
			t.Errorf("copied back:\n%s%s\nwant:\n%s%s", gotList, gotSums, wantList, wantSums)
		}
		if r := bcvk(t, "ephemeral", "cp", name+":"+guestDir+"/private", filepath.Join(back, "p")); r.code != 0 {
			t.Fatalf("cp of a file out: exit %d: %s", r.code, r.stderr)
		}
		if fi, err := os.Stat(filepath.Join(back, "p")); err != nil || fi.Mode() != 0o600 {
			t.Errorf("file copied out: %v, %v", fi, err)
		}
	})
	t.Run("failures", func(t *testing.T) {
		out := filepath.Join(host, "fail")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{name + ":/no/such/file", out}, 1, name + ":/no/such/file: no such file or directory"},
			{[]string{name + ":" + guestDir, out}, 1, "is a directory: use -r"},
			{[]string{src, name + ":/tmp"}, 1, src + " is a directory: use -r"},
			{[]string{"-r", src, name + ":/tmp"}, 0, ""},
			{[]string{"-r", src, name + ":/tmp/"}, 1, name + ":/tmp/tree exists: cp does not merge directories"},
			{[]string{filepath.Join(host, "missing"), name + ":/tmp"}, 1, "no such file or directory"},
			{[]string{"-r", src, name + ":/no/such/dir/x"}, 1, "its directory /no/such/dir does not exist"},
			{[]string{src, out}, 2, "neither SRC nor DEST names a VM"},
			{[]string{name + ":/a", name + ":/b"}, 2, "both SRC and DEST are in a VM"},
		} {
			r := bcvk(t, append([]string{"ephemeral", "cp"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("cp %v: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
			}
		}
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Errorf("failed copies left %v", entries)
		}
	})
	// The host refuses what it does not make (a FIFO), with the guest's
	// tar still sending: bcvk stops it and keeps nothing.
	t.Run("refused-entry", func(t *testing.T) {
		// The FIFO is made last, so tar sends it first (tmpfs lists the
		// newest first), and then the file, more than the pipes and the
		// SSH window hold.
		if r := ssh(t, "mkdir /tmp/bcvk-cp-fifo && head -c 8000000 /dev/zero > /tmp/bcvk-cp-fifo/big && mkfifo /tmp/bcvk-cp-fifo/p"); r.code != 0 {
			t.Fatalf("making a FIFO in the guest: %s", r.stderr)
		}
		out := filepath.Join(host, "fifo")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		r := bcvk(t, "ephemeral", "cp", "-r", name+":/tmp/bcvk-cp-fifo", out)
		if r.code != 1 || !strings.Contains(r.stderr, "bcvk-cp-fifo/p\", a FIFO: bcvk copies only files, directories and links") {
			t.Errorf("copy of a tree with a FIFO: exit %d, stderr %q", r.code, r.stderr)
		}
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Errorf("the refused copy left %v", entries)
		}
	})
	// Neither side keeps a temporary directory.
	if entries, _ := filepath.Glob(filepath.Join(host, "*", ".bcvk-cp-*")); len(entries) != 0 {
		t.Errorf("left on the host: %v", entries)
	}
	if r := ssh(t, "ls -a /tmp "+guestDir+" ~ | grep -F .bcvk-cp. || true"); r.stdout != "" {
		t.Errorf("left in the guest: %q", r.stdout)
	}
}
