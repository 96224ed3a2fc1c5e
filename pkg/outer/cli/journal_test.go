package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/spec"
)

func TestJournalPath(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "old.log")
	if err := os.WriteFile(existing, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, c := range []struct{ in, want, err string }{
		{"", "", ""},
		{"j.log", filepath.Join(dir, "j.log"), ""},
		{existing, existing, ""},
		{filepath.Join(dir, "no", "j.log"), "", "does not exist"},
		{dir, "", "is a directory"},
		{"/dev/null", "", "not a regular file"},
	} {
		got, err := journalPath(c.in)
		if got != c.want || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: got %q, %v; want %q, %q", c.in, got, err, c.want, c.err)
		}
	}
}

func TestNoJournalHint(t *testing.T) {
	dir := t.TempDir()
	sp := spec.New()
	sp.Name = "vm1"
	if err := sp.Write(filepath.Join(dir, spec.SpecFile)); err != nil {
		t.Fatal(err)
	}
	if h := noJournalHint(dir); !strings.Contains(h, "without --journal FILE") {
		t.Errorf("not asked for: %q", h)
	}
	sp.Journal = "/tmp/j.log"
	if err := sp.Write(filepath.Join(dir, spec.SpecFile)); err != nil {
		t.Fatal(err)
	}
	if h := noJournalHint(dir); !strings.Contains(h, "version 256") {
		t.Errorf("nothing yet: %q", h)
	}
	if err := os.WriteFile(filepath.Join(dir, spec.SSHTransportFile), []byte("tcp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h := noJournalHint(dir); !strings.Contains(h, "TCP") {
		t.Errorf("tcp: %q", h)
	}
	if err := os.WriteFile(filepath.Join(dir, spec.JournalFile), []byte("line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h := noJournalHint(dir); h != "" {
		t.Errorf("a journal: %q", h)
	}
}
