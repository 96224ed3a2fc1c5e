package cli

import (
	"bytes"
	"strings"
	"testing"
)

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// Bad input is refused before podman is ever asked, with status 2.
func TestBadInputIsAUsageError(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ephemeral", "run-ssh"}, "run-ssh needs an IMAGE"},
		{[]string{"ephemeral", "run-ssh", "--memory", "4Q", "img"}, `invalid size "4Q"`},
		{[]string{"ephemeral", "run-ssh", "--memory", "100M", "img"}, "out of range"},
		{[]string{"ephemeral", "run-ssh", "--vcpus", "0", "img"}, "vcpus 0 is out of range"},
		{[]string{"ephemeral", "run-ssh", "--name", "has space", "img"}, "invalid name"},
		{[]string{"ephemeral", "run-ssh", "--timeout", "0s", "img"}, "--timeout must be positive"},
		{[]string{"ephemeral", "run-ssh", "--no-such-flag", "img"}, "unknown flag"},
		{[]string{"--log-level", "loud", "ephemeral", "run-ssh", "img"}, "invalid --log-level"},
		{[]string{"ephemeral", "run-ssh", "--root-transport", "nonsense", "img"}, `--root-transport "nonsense": use virtiofs, erofs or auto`},
		{[]string{"ephemeral", "run", "--root-transport", "nfs", "img"}, `--root-transport "nfs"`},
		{[]string{"to-disk", "--root-transport", "nonsense", "img", "/tmp/x.img"}, `--root-transport "nonsense"`},
		{[]string{"ephemeral", "run-ssh", "--ssh-transport", "serial", "img"}, `--ssh-transport "serial": use vsock, tcp or auto`},
		{[]string{"ephemeral", "run", "--network", "bridge", "img"}, `--network "bridge": use user or none`},
		{[]string{"ephemeral", "run-ssh", "--network", "none", "--ssh-transport", "tcp", "img"}, "--network none leaves no network for --ssh-transport tcp"},
	} {
		code, out, errs := run(tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errs, tc.want)
		}
		if n := strings.Count(errs, "Error:"); n != 1 {
			t.Errorf("%v: error printed %d times", tc.args, n)
		}
	}
}

func TestCommandAfter(t *testing.T) {
	if got := commandAfter([]string{"--", "sh", "-c", "x"}); strings.Join(got, " ") != "sh -c x" {
		t.Fatalf("got %q", got)
	}
	if got := commandAfter([]string{"ls", "--", "x"}); strings.Join(got, " ") != "ls -- x" {
		t.Fatalf("got %q", got)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run("--version")
	if code != 0 || !strings.HasPrefix(out, "bcvk version ") {
		t.Fatalf("exit %d, %q", code, out)
	}
}

// --version names the runner image, and works without podman.
func TestVersionNamesTheRunnerImage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("BCVK_RUNNER_IMAGE", "")
	code, out, _ := run("--runner-image", "localhost/r:1", "--version")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 2 || lines[1] != "runner image localhost/r:1, not present (podman is not installed)" {
		t.Fatalf("exit %d, %q", code, out)
	}
}
