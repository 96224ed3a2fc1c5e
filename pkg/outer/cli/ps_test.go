package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A VM whose owner label bcvk cannot judge is listed, and marked, in both
// the table and the JSON; it is not removed.
func TestPsMarksUnknownOwner(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	dir := t.TempDir()
	ps := `[{"Id":"c1","Names":["vm1"],"ImageID":"sha","State":"running","Created":0,
"Labels":{"bcvk.ephemeral":"1","bcvk.name":"vm1","bcvk.image":"img","bcvk.owner":"1@old-label"}}]`
	script := "#!/bin/sh\necho \"$*\" >> " + filepath.Join(dir, "log") + "\n[ \"$1\" = ps ] && echo '" + ps + "'\nexit 0\n"
	if err := os.WriteFile(filepath.Join(dir, "podman"), []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	code, out, errs := run("ephemeral", "ps")
	if code != 0 || !strings.Contains(out, "running (unknown owner)") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	code, out, errs = run("ephemeral", "ps", "--json")
	if code != 0 || !strings.Contains(out, `"ownerUnknown": true`) {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "log")); strings.Contains(string(log), "rm ") {
		t.Fatalf("podman was asked to remove: %s", log)
	}
}
