package kargsd

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      string
	}{
		{"plain", `kargs = ["console=ttyS0", "quiet"]`, []string{"console=ttyS0", "quiet"}, ""},
		{"this arch", "kargs = [\"a=1\"]\nmatch-architectures = [\"x86_64\", \"aarch64\"]", []string{"a=1"}, ""},
		{"other arch", "kargs = [\"a=1\"]\nmatch-architectures = [\"aarch64\"]", nil, ""},
		{"empty list", `kargs = []`, nil, ""},
		{"quoted value", `kargs = ['opt="a,b"']`, []string{`opt="a,b"`}, ""},
		{"unknown key", "kargs = []\nfoo = 1", nil, "unknown key foo"},
		{"no kargs", `match-architectures = ["x86_64"]`, nil, "no kargs list"},
		{"not a list", `kargs = "a b"`, nil, "kargs"},
		{"white space", `kargs = ["a b"]`, nil, "white space"},
		{"odd quote", `kargs = ['a="b']`, nil, "unbalanced"},
		{"not toml", `kargs = [`, nil, "toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in), "x86_64")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want an error with %q, got %v, %v", tc.err, got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRead(t *testing.T) {
	root := t.TempDir()
	if got, err := Read(root, "x86_64"); err != nil || got != nil {
		t.Fatalf("no kargs.d: got %v, %v", got, err)
	}
	dir := filepath.Join(root, Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"20-b.toml":     `kargs = ["b=2"]`,
		"10-a.toml":     `kargs = ["a=1", "a2"]`,
		"15-arm.toml":   "kargs = [\"arm\"]\nmatch-architectures = [\"aarch64\"]",
		"README":        "not read",
		"30-c.toml.bak": `kargs = ["no"]`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A link out of the image is not followed to the host.
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "40-link.toml")); err != nil {
		t.Fatal(err)
	}
	files, err := Read(root, "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if want := []File{{"10-a.toml", []string{"a=1", "a2"}}, {"20-b.toml", []string{"b=2"}}}; !reflect.DeepEqual(files, want) {
		t.Fatalf("got %+v, want %+v", files, want)
	}
	if got := Args(files); !reflect.DeepEqual(got, []string{"a=1", "a2", "b=2"}) {
		t.Fatalf("Args = %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "50-bad.toml"), []byte("kargs = [\"x\"]\nkarg = 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(root, "x86_64"); err == nil || !strings.Contains(err.Error(), "50-bad.toml") {
		t.Fatalf("a bad file: want an error naming it, got %v", err)
	}
}
