package cli

import (
	"strings"
	"testing"
)

// cp's bad arguments are usage errors, found before podman is asked.
func TestCpUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ephemeral", "cp", "a"}, "cp needs SRC and DEST"},
		{[]string{"ephemeral", "cp", "a", "b", "c"}, "cp needs SRC and DEST"},
		{[]string{"ephemeral", "cp", "a", "b"}, "neither SRC nor DEST names a VM"},
		{[]string{"ephemeral", "cp", "x:/a", "y:/b"}, "both SRC and DEST are in a VM"},
		{[]string{"ephemeral", "cp", "x:", "out"}, "give a PATH in the VM"},
		{[]string{"ephemeral", "cp", "--bogus", "x:/a", "out"}, "unknown flag"},
	} {
		code, out, errs := run(tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}
}

func TestCpHelp(t *testing.T) {
	code, out, _ := run("ephemeral", "--help")
	if code != 0 || !strings.Contains(out, "cp ") || !strings.Contains(out, "Copy files and directories") {
		t.Errorf("ephemeral --help: exit %d\n%s", code, out)
	}
	code, out, _ = run("ephemeral", "cp", "--help")
	if code != 0 || !strings.Contains(out, "bcvk ephemeral cp -r ./site dev:/srv/") || !strings.Contains(out, "-r, --recursive") {
		t.Errorf("cp --help: exit %d\n%s", code, out)
	}
}
