package ephemeral

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/outer/vm"
	"github.com/bcvk/bcvk/pkg/sshclient"
)

func TestParseCopy(t *testing.T) {
	for _, tc := range []struct {
		src, dest string
		want      CopyOptions
		err       string
	}{
		{"dev:/etc/hosts", ".", CopyOptions{Src: Endpoint{"dev", "/etc/hosts"}, Dest: Endpoint{"", "."}}, ""},
		{"./a:b", "vm-1.x:rel/dir", CopyOptions{Src: Endpoint{"", "./a:b"}, Dest: Endpoint{"vm-1.x", "rel/dir"}}, ""},
		{"dir/a:b", "dev:/tmp", CopyOptions{Src: Endpoint{"", "dir/a:b"}, Dest: Endpoint{"dev", "/tmp"}}, ""},
		{"/abs:x", "dev:/tmp", CopyOptions{Src: Endpoint{"", "/abs:x"}, Dest: Endpoint{"dev", "/tmp"}}, ""},
		{"dev:a:b", "out", CopyOptions{Src: Endpoint{"dev", "a:b"}, Dest: Endpoint{"", "out"}}, ""},
		{"a", "b", CopyOptions{}, "neither SRC nor DEST names a VM: write the VM's side as NAME:PATH"},
		{"a", "-x:b", CopyOptions{}, `("-x:b" is a host path: what comes before its ':' is no VM name)`},
		{"x:/a", "y:/b", CopyOptions{}, "both SRC and DEST are in a VM"},
		{"dev:", "out", CopyOptions{}, `"dev:": give a PATH in the VM after dev:`},
		{"", "dev:/tmp", CopyOptions{}, "empty host path"},
		{"-bad:x", "out", CopyOptions{}, "neither"},
	} {
		got, err := ParseCopy(tc.src, tc.dest, false)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseCopy(%q, %q): error %v, want %q", tc.src, tc.dest, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseCopy(%q, %q) = %+v, %v; want %+v", tc.src, tc.dest, got, err, tc.want)
		}
	}
}

// The guest command lines as ssh hands them to the login shell: every
// path is one quoted word, never part of a script.
func TestGuestCommandLines(t *testing.T) {
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{archiveCommand("/var/lib", "it's here"), `tar -c -f - -C /var/lib -- 'it'\''s here'`},
		{archiveCommand("/", "-rf"), `tar -c -f - -C / -- -rf`},
		{extractCommand("rel dir", "$(reboot)", true), `sh -c '` + strings.ReplaceAll(extractScript, "'", `'\''`) + `' sh './rel dir' '$(reboot)' dir`},
		{extractCommand("/tmp", "a;b", false), `sh -c '` + strings.ReplaceAll(extractScript, "'", `'\''`) + `' sh /tmp 'a;b' file`},
		{probeCommand("", "`x`", "/tmp/`x`", "."), `sh -c '` + strings.ReplaceAll(probeScript, "'", `'\''`) + `' sh '' '` + "`x`" + `' '/tmp/` + "`x`" + `' .`},
	} {
		if got := sshclient.QuoteCommand(tc.cmd); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
	// The scripts themselves, as reviewed.
	for _, want := range []string{`tar -x -p -o -f - -C "$tmp"`, `mv -f "$tmp/t/$n" "$d/$n"`, `trap 'rm -rf "$tmp"' EXIT`} {
		if !strings.Contains(extractScript, want) {
			t.Errorf("extractScript lacks %s", want)
		}
	}
}

func TestPlace(t *testing.T) {
	const dir, missing, file, link = kind("ed"), kind(""), kind("ef"), kind("lef")
	for _, tc := range []struct {
		dest       string
		srcDir     bool
		dk, ck, pk kind
		want       placement
		err        string
	}{
		{"/tmp", false, dir, missing, dir, placement{"/tmp", "f", missing}, ""},
		{"/tmp/", true, dir, missing, dir, placement{"/tmp", "f", missing}, ""},
		{"/tmp/new", true, missing, missing, dir, placement{"/tmp", "new", missing}, ""},
		{"new", false, missing, missing, dir, placement{".", "new", missing}, ""},
		{"/tmp/old", false, file, missing, dir, placement{"/tmp", "old", file}, ""},
		{"/tmp", false, dir, file, dir, placement{"/tmp", "f", file}, ""},
		{"/tmp/linkdir", false, "led", missing, dir, placement{"/tmp/linkdir", "f", missing}, ""},
		{"/no/new", false, missing, missing, missing, placement{}, "cannot copy to D: its directory /no does not exist"},
		{"/tmp/new/", false, missing, missing, dir, placement{}, "D: no such directory"},
		{"/tmp/old/", false, file, missing, dir, placement{}, "D is not a directory"},
		{"/tmp", true, dir, dir, dir, placement{}, "D/f exists: cp does not merge directories"},
		{"/tmp", false, dir, dir, dir, placement{}, "cannot copy a file over D/f, which is a directory"},
		{"/tmp/old", true, file, missing, dir, placement{}, "cannot copy a directory over D"},
		{"/tmp/l", false, link, missing, dir, placement{}, "D is a symbolic link"},
		{"/tmp", false, dir, "l", dir, placement{}, "D/f is a symbolic link"},
		{"/dev/null", false, "e", missing, dir, placement{}, "D is not a regular file"},
	} {
		got, err := place("D", tc.dest, "f", tc.srcDir, tc.dk, tc.ck, tc.pk)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("place(%q): error %v, want %q", tc.dest, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("place(%q) = %+v, %v; want %+v", tc.dest, got, err, tc.want)
		}
	}
}

// localGuest runs the guest's commands on this host, in home: the real
// scripts against the host's sh and tar.
func localGuest(t *testing.T, home string) Guest {
	for _, p := range []string{"sh", "tar", "mktemp", "readlink"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s is not installed", p)
		}
	}
	return func(ctx context.Context, cmd []string, st vm.Streams) error {
		c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
		c.Dir, c.Stdin, c.Stdout, c.Stderr = home, st.In, st.Out, st.Err
		err := c.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return &vm.ExitError{Code: ee.ExitCode()}
		}
		return err
	}
}

// listing is "PATH MODE [= CONTENT | -> TARGET]" for what is under dir.
func listing(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, _ := d.Info()
		l := rel + " " + fi.Mode().String()
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			l += " -> " + target
		} else if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			l += " = " + string(b)
		}
		lines = append(lines, l)
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func mkfile(t *testing.T, p string, mode fs.FileMode, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func TestCopyThroughLocalGuest(t *testing.T) {
	host, home := t.TempDir(), t.TempDir()
	guest := localGuest(t, home)
	src := filepath.Join(host, "tree")
	mkfile(t, filepath.Join(src, "private"), 0o600, "p")
	mkfile(t, filepath.Join(src, "run me"), 0o755, "r")
	mkfile(t, filepath.Join(src, "sub", "f"), 0o644, "f")
	if err := os.Symlink("sub/f", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	st := vm.Streams{Out: &errb, Err: &errb}
	cp := func(src, dest string, r bool) error {
		o, err := ParseCopy(src, dest, r)
		if err != nil {
			t.Fatal(err)
		}
		return Copy(t.Context(), guest, o, st)
	}
	// In: into an existing directory (relative to the home), then as a
	// new name.
	if err := os.Mkdir(filepath.Join(home, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := cp(src, "vm:in", true); err != nil {
		t.Fatalf("copy in: %v\n%s", err, errb.String())
	}
	if got, want := listing(t, filepath.Join(home, "in", "tree")), listing(t, src); got != want {
		t.Errorf("copied in:\n%s\nwant:\n%s", got, want)
	}
	if err := cp(src, "vm:"+filepath.Join(home, "renamed"), true); err != nil {
		t.Fatal(err)
	}
	if got, want := listing(t, filepath.Join(home, "renamed")), listing(t, src); got != want {
		t.Errorf("copied in as renamed:\n%s\nwant:\n%s", got, want)
	}
	// A file over a file is replaced.
	mkfile(t, filepath.Join(home, "old"), 0o644, "old")
	if err := cp(filepath.Join(src, "run me"), "vm:old", false); err != nil {
		t.Fatal(err)
	}
	if got := listing(t, home); !strings.Contains(got, "old -rwxr-xr-x = r") {
		t.Errorf("file over file:\n%s", got)
	}

	// Out, into a directory and as a new name.
	out := filepath.Join(host, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := cp("vm:in/tree", out, true); err != nil {
		t.Fatalf("copy out: %v\n%s", err, errb.String())
	}
	if got, want := listing(t, filepath.Join(out, "tree")), listing(t, src); got != want {
		t.Errorf("copied out:\n%s\nwant:\n%s", got, want)
	}
	if err := cp("vm:in/tree/private", filepath.Join(out, "p2"), false); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(out, "p2")); err != nil || fi.Mode() != 0o600 {
		t.Errorf("p2: %v %v", fi, err)
	}

	for _, tc := range []struct {
		src, dest string
		r         bool
		err       string
	}{
		{"vm:nothing", out, false, "vm:nothing: no such file or directory"},
		{"vm:in", out, false, "vm:in is a directory: use -r"},
		{src, "vm:in", false, src + " is a directory: use -r"},
		{src, "vm:in", true, "vm:in/tree exists: cp does not merge directories"},
		{filepath.Join(host, "nothing"), "vm:in", false, "no such file or directory"},
		{"vm:in/tree", out, true, "tree exists"},
		{"vm:in/tree/private", filepath.Join(host, "no", "where"), false, "its directory " + filepath.Join(host, "no") + " does not exist"},
	} {
		if err := cp(tc.src, tc.dest, tc.r); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("cp %s %s: error %v, want %q", tc.src, tc.dest, err, tc.err)
		}
	}
	// Nothing left behind anywhere.
	for _, d := range []string{host, home} {
		if got := listing(t, d); strings.Contains(got, ".bcvk-cp") {
			t.Errorf("left behind in %s:\n%s", d, got)
		}
	}
}

// A guest tar that fails halfway leaves nothing on the host.
func TestCopyOutGuestFails(t *testing.T) {
	host := t.TempDir()
	guest := func(ctx context.Context, cmd []string, st vm.Streams) error {
		if cmd[0] == "sh" { // the probe: a directory
			_, err := st.Out.Write([]byte("xed\n/srv/d\n"))
			return err
		}
		// A valid start, then the guest's tar dies.
		_, _ = st.Out.Write(make([]byte, 100))
		return &vm.ExitError{Code: 2}
	}
	o, _ := ParseCopy("vm:/srv/d", host, true)
	err := Copy(t.Context(), guest, o, vm.Streams{Err: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "failed in the guest with status 2") {
		t.Fatalf("error %v", err)
	}
	if got := listing(t, host); got != "" {
		t.Errorf("left behind:\n%s", got)
	}
}
