package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bad --cloud-init is a usage error before podman is ever asked.
func TestCloudInitUsageErrors(t *testing.T) {
	noUserData := t.TempDir()
	if err := os.WriteFile(filepath.Join(noUserData, "meta-data"), []byte("instance-id: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	seed := t.TempDir()
	if err := os.WriteFile(filepath.Join(seed, "user-data"), []byte("#cloud-config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ephemeral", "run-ssh", "--cloud-init", "/nonexistent", "img"}, "--cloud-init: /nonexistent does not exist"},
		{[]string{"ephemeral", "run", "--cloud-init", noUserData, "img"}, "--cloud-init: " + noUserData + " has no user-data file"},
		{[]string{"ephemeral", "run", "--cloud-init", filepath.Join(seed, "user-data"), "img"}, "is not a directory"},
		{[]string{"ephemeral", "run", "--warm", "--cloud-init", seed, "img"}, "--warm cannot be combined with --cloud-init"},
	} {
		code, out, errs := run(tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}
}

func TestCloudInitInHelp(t *testing.T) {
	for _, cmd := range []string{"run", "run-ssh"} {
		code, out, _ := run("ephemeral", cmd, "--help")
		if code != 0 || !strings.Contains(out, "--cloud-init DIR") || !strings.Contains(out, "--cloud-init ./seed") {
			t.Errorf("%s --help: exit %d, no --cloud-init flag or example:\n%s", cmd, code, out)
		}
	}
}
