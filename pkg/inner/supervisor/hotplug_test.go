package supervisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/spec"
)

// mountSharesScript under a real sh, with mount, mountpoint and sleep
// stubbed: each share gets its directory and one mount with its mode; a
// mount that keeps failing ends the script with exitMountFailed.
func TestMountSharesScript(t *testing.T) {
	run := func(t *testing.T, mount string, binds []spec.Bind) (string, int) {
		t.Helper()
		bin := t.TempDir()
		log := filepath.Join(t.TempDir(), "log")
		for name, body := range map[string]string{
			"mount":      "echo mount \"$@\" >>" + log + "\n" + mount,
			"mountpoint": "exit 1",
			"sleep":      "exit 0",
		} {
			if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command("sh", append([]string{"-c", mountSharesScript, "sh"}, mountSharesArgs(binds, 5)...)...)
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
		err := cmd.Run()
		b, _ := os.ReadFile(log)
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(b), code
	}
	dir := t.TempDir()
	binds := []spec.Bind{{GuestPath: filepath.Join(dir, "a b/rw")}, {GuestPath: filepath.Join(dir, "it's;ro"), ReadOnly: true}}
	out, code := run(t, "exit 0", binds)
	want := "mount -t virtiofs -o rw -- bind0 " + binds[0].GuestPath + "\nmount -t virtiofs -o ro -- bind1 " + binds[1].GuestPath + "\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, mounts\n%s\nwant\n%s", code, out, want)
	}
	for _, b := range binds {
		if fi, err := os.Stat(b.GuestPath); err != nil || !fi.IsDir() {
			t.Errorf("no mount point %s: %v", b.GuestPath, err)
		}
	}
	// The device never shows: retried, then given up with the status
	// that stops the restore's login retries.
	out, code = run(t, "exit 32", binds[:1])
	if code != exitMountFailed || strings.Count(out, "\n") != 6 {
		t.Fatalf("exit %d after %d mounts", code, strings.Count(out, "\n"))
	}
}
