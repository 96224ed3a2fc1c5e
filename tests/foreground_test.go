package tests

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// A foreground VM with its console: Ctrl-C asks the guest to power off and
// bcvk exits 130; the stopped VM stays (no --rm) with its console log, ssh
// to it is refused clearly, and rm removes it without -f.
func TestForegroundConsoleAndCtrlC(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-fg"
	cleanupContainer(t, name)
	cmd, out, errb := bcvkCmd(t, sharedState, nil, "ephemeral", "run", "--console", "--name", name, "--memory", "1G", sampleImage())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// The console shows the login prompt and bcvk saw SSH answer.
	waitUntil(t, done, bootTimeout, func() bool {
		return strings.Contains(out.String(), "login:") && strings.Contains(stdoutOfPs(t), name+" ready")
	}, func() string { return "the VM to come up; console:\n" + tail(out.String(), 20) + "\n" + errb.String() })
	if !strings.Contains(out.String(), "Linux version") {
		t.Error("--console did not show the kernel's messages")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("bcvk did not end after Ctrl-C")
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit %d after SIGINT, want 130", code)
	}
	if !strings.Contains(out.String(), "reboot: Power down") {
		t.Errorf("the guest did not power off cleanly:\n%s", tail(out.String(), 15))
	}
	r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "ssh", name, "--", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "is not running") {
		t.Errorf("ssh to a stopped VM: exit %d, %q", r.code, r.stderr)
	}
	if r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "logs", name); !strings.Contains(r.stdout, "reboot: Power down") {
		t.Errorf("logs of the stopped VM lack its power-off")
	}
	if r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "rm", name); r.code != 0 {
		t.Errorf("rm of a stopped VM: exit %d %s", r.code, r.stderr)
	}
	assertNothingLeft(t, name, sharedState)
}

// stdoutOfPs returns `bcvk ephemeral ps` as "NAME SSH" lines.
func stdoutOfPs(t *testing.T) string {
	t.Helper()
	r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "ps")
	var b strings.Builder
	for _, l := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 {
			b.WriteString(f[0] + " " + f[3] + "\n")
		}
	}
	return b.String()
}

func TestUnknownVM(t *testing.T) {
	needPodman(t)
	for _, args := range [][]string{
		{"ephemeral", "rm", "bcvk-no-such-vm"},
		{"ephemeral", "ssh", "bcvk-no-such-vm", "--", "true"},
		{"ephemeral", "logs", "bcvk-no-such-vm"},
		{"ephemeral", "ssh-config", "bcvk-no-such-vm"},
	} {
		r := runBcvk(t, sharedState, nil, time.Minute, args...)
		if r.code != 1 || !strings.Contains(r.stderr, `no such VM "bcvk-no-such-vm"`) {
			t.Errorf("%v: exit %d, %q", args, r.code, r.stderr)
		}
	}
	if r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "rm", "-f", "bcvk-no-such-vm"); r.code != 0 || r.stderr != "" {
		t.Errorf("rm -f of an unknown VM: exit %d, %q", r.code, r.stderr)
	}
}
