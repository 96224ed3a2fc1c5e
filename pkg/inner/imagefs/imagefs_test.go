package imagefs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// tree makes root with "usr/lib/modules/6.1/vmlinuz" and the links given
// (path -> target; "$OUT" in a target is a directory outside root that
// holds the same file).
func tree(t *testing.T, links map[string]string) (root, out string) {
	t.Helper()
	root, out = t.TempDir(), t.TempDir()
	for _, dir := range []string{root, out} {
		p := filepath.Join(dir, "usr/lib/modules/6.1/vmlinuz")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(dir), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for rel, target := range links {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(strings.ReplaceAll(target, "$OUT", out), p); err != nil {
			t.Fatal(err)
		}
	}
	return root, out
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name  string
		links map[string]string
		path  string
		want  string // "" for ENOENT
	}{
		{"plain", nil, "usr/lib/modules/6.1/vmlinuz", "/usr/lib/modules/6.1/vmlinuz"},
		{"dot-dot above root stays at root", nil, "/../../usr/./lib/../lib/modules/6.1/vmlinuz", "/usr/lib/modules/6.1/vmlinuz"},
		{"absolute link is taken inside root", map[string]string{"k": "/usr/lib/modules/6.1/vmlinuz"}, "k", "/usr/lib/modules/6.1/vmlinuz"},
		{"relative link with too many dot-dots", map[string]string{"a/b/k": "../../../../../usr/lib/modules/6.1/vmlinuz"}, "a/b/k", "/usr/lib/modules/6.1/vmlinuz"},
		{"directory link in the middle", map[string]string{"m": "usr/lib/modules"}, "m/6.1/vmlinuz", "/usr/lib/modules/6.1/vmlinuz"},
		{"link to a host directory", map[string]string{"m": "$OUT/usr"}, "m/lib/modules/6.1/vmlinuz", ""},
		{"link to a host file through dot-dots", map[string]string{"k": strings.Repeat("../", 30) + "$OUT/usr/lib/modules/6.1/vmlinuz"}, "k", ""},
		{"link to /dev/zero", map[string]string{"z": "/dev/zero"}, "z", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := tree(t, tc.links)
			got, err := Resolve(root, tc.path)
			if tc.want == "" {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("want not found, got %q, %v", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestResolveLoop(t *testing.T) {
	root, _ := tree(t, map[string]string{"a": "b", "b": "/a"})
	if _, err := Resolve(root, "a/x"); !errors.Is(err, syscall.ELOOP) || !strings.Contains(err.Error(), "resolving a/x") {
		t.Fatalf("want ELOOP naming a/x, got %v", err)
	}
}

// Open refuses what is not a regular file, with and without openat2, and
// without blocking on a FIFO.
func TestOpenRegularOnly(t *testing.T) {
	root, _ := tree(t, map[string]string{"k": "usr/lib/modules/6.1/vmlinuz"})
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, p, err := Open(root, "k")
	if err != nil || p != "/usr/lib/modules/6.1/vmlinuz" || f.Name() != filepath.Join(root, p) {
		t.Fatalf("got %q, %v", p, err)
	}
	f.Close()
	for _, name := range []string{"fifo", "usr"} {
		if _, _, err := Open(root, name); err == nil || !strings.Contains(err.Error(), "is not a regular file") {
			t.Errorf("%s: got %v", name, err)
		}
	}
	for _, openat2 := range []bool{true, false} {
		fd, err := openIn(root, "/usr/lib/modules/6.1/vmlinuz", openat2)
		if err != nil {
			t.Fatalf("openat2 %v: %v", openat2, err)
		}
		syscall.Close(fd)
		// A symlink where Resolve promised none is refused, not followed.
		if _, err := openIn(root, "/k", openat2); err == nil {
			t.Fatalf("openat2 %v: a symlink was followed", openat2)
		}
	}
}

func TestReadFileLimit(t *testing.T) {
	root, _ := tree(t, nil)
	b, err := ReadFile(root, "usr/lib/modules/6.1/vmlinuz", 1<<20)
	if err != nil || string(b) != root {
		t.Fatalf("got %q, %v", b, err)
	}
	var tl *TooLargeError
	if _, err := ReadFile(root, "usr/lib/modules/6.1/vmlinuz", 3); !errors.As(err, &tl) || !strings.Contains(err.Error(), "vmlinuz") {
		t.Fatalf("want TooLargeError naming the file, got %v", err)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/lib/modules/6.12.0-55.el10.x86_64": "/usr/lib/modules/6.12.0-55.el10.x86_64",
		"a\x1b[2Jb":                              `"a\x1b[2Jb"`,
		"two words":                              `"two words"`,
		"":                                       `""`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// ResolveCreate follows the bootc layout's links (/mnt -> var/mnt, also
// absolute ones) inside root and keeps the part that does not exist yet.
func TestResolveCreate(t *testing.T) {
	root, out := tree(t, map[string]string{"mnt": "var/mnt", "root": "/var/roothome", "out": "$OUT"})
	if err := os.MkdirAll(filepath.Join(root, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/mnt/data":        "/var/mnt/data",
		"/root/.ssh":       "/var/roothome/.ssh",
		"/opt/x/../y":      "/opt/y",
		"/usr/lib/modules": "/usr/lib/modules",
		"/mnt/../../etc/x": "/var/mnt/etc/x", // lexical below the missing part, still inside
	} {
		got, err := ResolveCreate(root, path)
		if err != nil || got != want {
			t.Errorf("ResolveCreate(%s) = %q, %v; want %q", path, got, err, want)
		}
	}
	// A link to a host directory names that path inside root, where it
	// does not exist.
	if got, err := ResolveCreate(root, "/out/usr/x"); err != nil || got != out+"/usr/x" {
		t.Errorf("ResolveCreate through a link to the host = %q, %v; want %s inside root", got, err, out+"/usr/x")
	}
}
