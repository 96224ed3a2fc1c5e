package tarcopy

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tree describes what is in a directory as "MODE PATH [-> TARGET | =
// CONTENT]" lines, by path.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		l := rel + " " + fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			l += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			l += " = " + string(b)
		}
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func write(t *testing.T, p string, mode fs.FileMode, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// sampleTree makes the tree the round trip copies.
func sampleTree(t *testing.T) string {
	src := filepath.Join(t.TempDir(), "src")
	write(t, filepath.Join(src, "private"), 0o600, "secret\n")
	write(t, filepath.Join(src, "run.sh"), 0o755, "#!/bin/sh\n")
	write(t, filepath.Join(src, "with space.txt"), 0o644, "spaced\n")
	write(t, filepath.Join(src, "a", "b", "deep"), 0o640, "deep\n")
	if err := os.Chmod(filepath.Join(src, "a", "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a/b/deep", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent/abs", filepath.Join(src, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src, 0o750); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "private"), old, old); err != nil {
		t.Fatal(err)
	}
	return src
}

func TestRoundTrip(t *testing.T) {
	src := sampleTree(t)
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stream, warn bytes.Buffer
	w := NewWriter(&stream, &warn)
	if err := w.AddTree(src, "copy"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warn.String(), "skipped "+filepath.Join(src, "fifo")+": a FIFO") {
		t.Errorf("warning %q", warn.String())
	}
	if err := os.Remove(filepath.Join(src, "fifo")); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	isDir, err := Extract(&stream, dst, "renamed")
	if err != nil || !isDir {
		t.Fatalf("Extract: %v, dir %v", err, isDir)
	}
	if fi, err := os.Stat(filepath.Join(dst, "renamed")); err != nil || fi.Mode() != fs.ModeDir|0o750 {
		t.Errorf("top: %v, %v", fi.Mode(), err)
	}
	if got, want := tree(t, filepath.Join(dst, "renamed")), tree(t, src); got != want || !strings.Contains(got, "a/b drwx------") {
		t.Errorf("copied tree:\n%s\nwant:\n%s", got, want)
	}
	fi, err := os.Stat(filepath.Join(dst, "renamed", "private"))
	if err != nil || !fi.ModTime().Equal(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("mtime %v, %v", fi.ModTime(), err)
	}
}

func TestRoundTripFileAndLinkedTop(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "f"), 0o751, "x")
	// A top that is a link is followed: the user named it.
	if err := os.Symlink("f", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	w := NewWriter(&stream, os.Stderr)
	if err := w.AddTree(filepath.Join(dir, "l"), "g"); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	dst := t.TempDir()
	if isDir, err := Extract(&stream, dst, "g"); err != nil || isDir {
		t.Fatalf("Extract: %v, dir %v", err, isDir)
	}
	if got := tree(t, dst); got != "g -rwxr-x--x = x" {
		t.Errorf("got %s", got)
	}
}

// entry is one header of a hand-made stream.
type entry struct {
	typ        byte
	name, link string
	body       string
	mode       int64
}

func stream(t testing.TB, es ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		if e.mode == 0 {
			e.mode = 0o644
		}
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestExtractRefuses(t *testing.T) {
	top := entry{typ: tar.TypeDir, name: "top/", mode: 0o755}
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string
	}{
		{"dotdot", []entry{{typ: tar.TypeReg, name: "../x", body: "x"}}, "climbs out"},
		{"dotdot-inside", []entry{top, {typ: tar.TypeReg, name: "top/../../x", body: "x"}}, "climbs out"},
		{"absolute", []entry{{typ: tar.TypeReg, name: "/etc/x", body: "x"}}, "absolute"},
		{"through-symlink", []entry{top, {typ: tar.TypeSymlink, name: "top/l", link: "/tmp"}, {typ: tar.TypeReg, name: "top/l/evil", body: "x"}}, "not a directory it sent"},
		{"through-symlink-dir", []entry{top, {typ: tar.TypeSymlink, name: "top/l", link: "."}, {typ: tar.TypeDir, name: "top/l/d/"}}, "not a directory it sent"},
		{"symlink-then-same-name", []entry{top, {typ: tar.TypeSymlink, name: "top/f", link: "/etc/passwd"}, {typ: tar.TypeReg, name: "top/f", body: "x"}}, "twice"},
		{"char-device", []entry{top, {typ: tar.TypeChar, name: "top/null"}}, "a character device"},
		{"fifo", []entry{top, {typ: tar.TypeFifo, name: "top/p"}}, "a FIFO"},
		{"other-top", []entry{top, {typ: tar.TypeReg, name: "other/x", body: "x"}}, "outside"},
		{"hardlink-out", []entry{top, {typ: tar.TypeLink, name: "top/h", link: "../etc/passwd"}}, "climbs out"},
		{"hardlink-to-dir", []entry{top, {typ: tar.TypeLink, name: "top/h", link: "top"}}, "not a file"},
		{"no-parent", []entry{{typ: tar.TypeReg, name: "top/x", body: "x"}}, "not a directory it sent"},
		{"long-component", []entry{top, {typ: tar.TypeReg, name: "top/" + strings.Repeat("a", 256), body: "x"}}, "longer than 255"},
		{"empty", nil, "held nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outside := t.TempDir()
			dst := filepath.Join(outside, "dst")
			if err := os.Mkdir(dst, 0o700); err != nil {
				t.Fatal(err)
			}
			_, err := Extract(bytes.NewReader(stream(t, tc.entries...)), dst, "out")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
			if got := tree(t, outside); got != "dst drwx------" {
				t.Errorf("left behind:\n%s", got)
			}
		})
	}
}

func TestExtractHardLink(t *testing.T) {
	dst := t.TempDir()
	s := stream(t, entry{typ: tar.TypeDir, name: "top/", mode: 0o755},
		entry{typ: tar.TypeReg, name: "top/a", body: "same", mode: 0o4755},
		entry{typ: tar.TypeLink, name: "top/b", link: "top/a"})
	if _, err := Extract(bytes.NewReader(s), dst, "out"); err != nil {
		t.Fatal(err)
	}
	// setuid is dropped.
	want := "out drwxr-xr-x\nout/a -rwxr-xr-x = same\nout/b -rwxr-xr-x = same"
	if got := tree(t, dst); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// A stream cut short (the guest's tar died, the VM went away) leaves
// nothing.
func TestExtractTruncated(t *testing.T) {
	s := stream(t, entry{typ: tar.TypeDir, name: "top/", mode: 0o755},
		entry{typ: tar.TypeReg, name: "top/a", body: "first"},
		entry{typ: tar.TypeDir, name: "top/d/", mode: 0o555},
		entry{typ: tar.TypeReg, name: "top/d/b", body: strings.Repeat("b", 5000)})
	dst := t.TempDir()
	_, err := Extract(bytes.NewReader(s[:len(s)-3000]), dst, "out")
	if err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("error %v", err)
	}
	if got := tree(t, dst); got != "" {
		t.Errorf("left behind:\n%s", got)
	}
}

// Whatever a stream holds, nothing appears outside the extraction
// directory, and a failed extraction leaves it empty.
func FuzzExtract(f *testing.F) {
	top := entry{typ: tar.TypeDir, name: "top/", mode: 0o755}
	f.Add([]byte{})
	f.Add(stream(f, top, entry{typ: tar.TypeReg, name: "top/a", body: "x"}))
	f.Add(stream(f, top, entry{typ: tar.TypeSymlink, name: "top/l", link: ".."}, entry{typ: tar.TypeReg, name: "top/l/x", body: "x"}))
	f.Add(stream(f, top, entry{typ: tar.TypeLink, name: "top/h", link: "../x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		outside := t.TempDir()
		dst := filepath.Join(outside, "dst")
		if err := os.Mkdir(dst, 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := Extract(bytes.NewReader(b), dst, "out")
		entries, _ := os.ReadDir(outside)
		if len(entries) != 1 {
			t.Fatalf("outside the extraction: %v", entries)
		}
		if err != nil {
			if got := tree(t, dst); got != "" {
				t.Fatalf("a failed extraction left:\n%s", got)
			}
		}
	})
}
