package tests

import (
	"bytes"
	"crypto/rand"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const bootTimeout = 6 * time.Minute

func TestRunSSHTrue(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-true"
	cleanupContainer(t, name)
	r := runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "run-ssh", "--name", name, sampleImage(), "--", "true")
	if r.code != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", r.code, r.stderr)
	}
	t.Logf("run-ssh -- true took %s", r.elapsed.Round(time.Millisecond))
	for _, step := range []string{"Starting container", "Booting the kernel", "Starting systemd"} {
		if !strings.Contains(r.stderr, step) {
			t.Errorf("progress on stderr lacks step %q", step)
		}
	}
	if r.stdout != "" {
		t.Errorf("stdout should be empty, got %q", r.stdout)
	}
	assertNothingLeft(t, name, sharedState)
}

// One boot with non-default flags answers several questions a user would
// ask: do the flags reach the guest, is the root writable, do stdin,
// stdout, stderr and the exit status pass through exactly.
func TestRunSSHGuestMatchesFlagsAndStreams(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-flags"
	cleanupContainer(t, name)
	payload := make([]byte, 256<<10)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	script := `set -e
head -c ` + strconv.Itoa(len(payload)) + ` >/tmp/payload
echo "cmdline=$(cat /proc/cmdline)" >&2
echo "nproc=$(nproc)" >&2
echo "memkb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)" >&2
echo written > /usr/bcvk-write-test && echo "root-writable=$(cat /usr/bcvk-write-test)" >&2
echo "root-fs=$(findmnt -n -o FSTYPE /)" >&2
echo "state=$(systemctl is-system-running || true)" >&2
cat /tmp/payload
exit 42`
	r := runBcvk(t, sharedState, bytes.NewReader(payload), bootTimeout,
		"ephemeral", "run-ssh", "--name", name, "--memory", "1536M", "--vcpus", "2",
		"--karg", "bcvk.test=hello", "--karg", "systemd.log_color=0",
		sampleImage(), "--", "sh", "-c", script)
	if r.code != 42 {
		t.Fatalf("exit status %d, want 42; stderr:\n%s", r.code, r.stderr)
	}
	if !bytes.Equal([]byte(r.stdout), payload) {
		t.Errorf("stdout is not the %d bytes sent through stdin (got %d bytes)", len(payload), len(r.stdout))
	}
	field := func(key string) string { return guestField(t, r.stderr, key) }
	if c := field("cmdline"); !strings.Contains(" "+c+" ", " bcvk.test=hello ") || !strings.Contains(c, "systemd.log_color=0") {
		t.Errorf("/proc/cmdline %q lacks the --karg values", c)
	}
	if n := field("nproc"); n != "2" {
		t.Errorf("guest has %s CPUs, want 2", n)
	}
	// MemTotal is RAM less what the kernel reserves: within 1536 MiB and
	// well above 1024 MiB.
	if kb, _ := strconv.Atoi(field("memkb")); kb > 1536*1024 || kb < 1300*1024 {
		t.Errorf("guest MemTotal %d kB does not match --memory 1536M", kb)
	}
	if w := field("root-writable"); w != "written" {
		t.Errorf("root not writable: %q", w)
	}
	if fs := field("root-fs"); fs != "overlay" {
		t.Errorf("root file system is %q, want overlay (tmpfs over the read-only image)", fs)
	}
	if st := field("state"); st != "running" {
		t.Errorf("systemctl is-system-running = %q, want running", st)
	}
	assertNothingLeft(t, name, sharedState)
}

func TestNoKernelFailsFast(t *testing.T) {
	needPodman(t)
	if err := exec.Command("podman", "image", "exists", noKernelImage()).Run(); err != nil {
		t.Fatalf("image %s is missing: run `make images`", noKernelImage())
	}
	name := "bcvk-test-nokernel"
	cleanupContainer(t, name)
	r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "run-ssh", "--name", name, noKernelImage(), "--", "true")
	if r.code == 0 {
		t.Fatal("run-ssh of an image without a kernel succeeded")
	}
	for _, want := range []string{"no bootable kernel", "/usr/lib/modules/*/vmlinuz", "/boot/EFI/Linux/*.efi"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, r.stderr)
		}
	}
	// It fails before any VM starts (behaviour, not a time limit: the
	// machine is shared).
	if strings.Contains(r.stderr, "Booting the kernel") {
		t.Errorf("a VM was started for an image without a kernel:\n%s", r.stderr)
	}
	assertNothingLeft(t, name, sharedState)
}

func TestMissingImage(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-missing"
	img := "localhost/bcvk-no-such-image:never"
	r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "run-ssh", "--pull=never", "--name", name, img, "--", "true")
	if r.code != 1 {
		t.Errorf("exit status %d, want 1", r.code)
	}
	for _, want := range []string{img, "not in local container storage", "podman pull"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, r.stderr)
		}
	}
	assertNothingLeft(t, name, sharedState)

	// With the default --pull=missing bcvk tries to pull, and says why that
	// failed (nothing serves localhost:443 here).
	r = runBcvk(t, sharedState, nil, 2*time.Minute, "ephemeral", "run-ssh", "--name", name, img, "--", "true")
	if r.code != 1 || !strings.Contains(r.stderr, "pulling "+img) || !strings.Contains(r.stderr, "podman pull") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	assertNothingLeft(t, name, sharedState)
}

func TestBadFlagsStartNothing(t *testing.T) {
	needPodman(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--memory", "4Q"}, `invalid size "4Q"`},
		{[]string{"--vcpus", "0"}, "vcpus 0 is out of range"},
		{[]string{"--accel", "hvf"}, `accelerator "hvf"`},
		{[]string{"--karg", "a b"}, "white space"},
		{[]string{"--bind", "/nonexistent/dir"}, "is not a directory on this host"},
		{[]string{"--ro-bind", "/etc:/proc/x"}, "is reserved"},
		{[]string{"--name", "has space"}, "invalid name"},
		{[]string{"--pull", "sometimes"}, `--pull "sometimes"`},
	} {
		name := "bcvk-test-badflag"
		args := append([]string{"ephemeral", "run-ssh", "--name", name}, tc.args...)
		r := runBcvk(t, sharedState, nil, time.Minute, append(args, sampleImage(), "--", "true")...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
		assertNothingLeft(t, name, sharedState)
	}
}

// Ctrl-C while the VM boots: bcvk stops, says so, and removes everything.
func TestSIGINTDuringBoot(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-sigint"
	cleanupContainer(t, name)
	cmd, _, errb := bcvkCmd(t, sharedState, nil, "ephemeral", "run-ssh", "--name", name, sampleImage(), "--", "true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Interrupt once the kernel is booting, the middle of the boot.
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitUntil(t, done, 3*time.Minute, func() bool {
		return strings.Contains(errb.String(), "Booting the kernel") && len(containersNamed(t, name)) > 0
	}, func() string { return "the boot to start:\n" + errb.String() })
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("bcvk did not stop within a minute of SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit status %d after SIGINT, want 130", code)
	}
	if !strings.Contains(errb.String(), "interrupted") {
		t.Errorf("no word of the interruption on stderr:\n%s", errb.String())
	}
	t.Logf("stopped and cleaned up %s after SIGINT", time.Since(start).Round(time.Millisecond))
	assertNothingLeft(t, name, sharedState)
}

// The runner image works without bcvk: `podman run` with the image mounted
// boots the VM with its console attached. Asking systemd for poweroff.target
// makes the VM boot fully and end by itself.
func TestRunnerImageDirectly(t *testing.T) {
	needPodman(t)
	runner := runnerImage(t)
	name := "bcvk-test-direct"
	cleanupContainer(t, name)
	// Without --rm: podman 4.3's `run --rm` can lose the exit code to a
	// concurrent `podman stop` ("no such exit code"); the container's own
	// record has it.
	cmd := exec.Command("podman", "run", "--name", name,
		"--mount", "type=image,source="+sampleImage()+",destination=/bcvk/image",
		"--tmpfs", "/run", "--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096",
		runner, "--accel", "tcg", "--memory", "1G", "--karg", "systemd.unit=poweroff.target")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("podman run of the runner failed: %v\n%s", err, tail(out.String(), 40))
		}
	case <-time.After(bootTimeout):
		_ = exec.Command("podman", "rm", "-f", "-t", "0", name).Run()
		t.Fatalf("the VM did not power off:\n%s", tail(out.String(), 40))
	}
	for _, want := range []string{"Linux version", "Welcome to", "reboot: Power down"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console output lacks %q:\n%s", want, tail(out.String(), 40))
		}
	}
}

// `podman stop` sends SIGTERM to bcvk-inner, which asks the guest to power
// off (ACPI through QMP) and exits 0 once it has; the console shows the
// guest's own shutdown.
func TestStopPowersOffGuest(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-stop"
	cleanupContainer(t, name)
	// Without --rm: podman 4.3's `run --rm` can lose the exit code to a
	// concurrent `podman stop` ("no such exit code"); the container's own
	// record has it.
	cmd := exec.Command("podman", "run", "--name", name,
		"--mount", "type=image,source="+sampleImage()+",destination=/bcvk/image",
		"--tmpfs", "/run", "--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096",
		runnerImage(t), "--accel", "tcg", "--memory", "1G")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitUntil(t, done, bootTimeout, func() bool { return strings.Contains(out.String(), "login:") },
		func() string { return "the login prompt; console:\n" + tail(out.String(), 40) })
	if b, err := exec.Command("podman", "stop", "--time", "120", name).CombinedOutput(); err != nil {
		t.Fatalf("podman stop: %v: %s", err, b)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("podman run did not end after podman stop")
	}
	if code, err := exec.Command("podman", "inspect", "--format", "{{.State.ExitCode}}", name).Output(); err != nil || strings.TrimSpace(string(code)) != "0" {
		t.Errorf("container exit status %q (%v), want 0: the guest powered off\n%s", code, err, tail(out.String(), 30))
	}
	for _, want := range []string{"asking the guest to power off", "reboot: Power down"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, tail(out.String(), 30))
		}
	}
	if strings.Contains(out.String(), "resorting to SIGKILL") {
		t.Error("podman had to kill the container")
	}
}

func runnerImage(t *testing.T) string {
	t.Helper()
	if r := env("BCVK_RUNNER_IMAGE", ""); r != "" {
		return r
	}
	out, err := exec.Command(bcvkBinary(t), "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	// The first line is "bcvk version V"; the second names the runner.
	f := strings.Fields(strings.SplitN(string(out), "\n", 2)[0])
	return "localhost/bcvk-runner:" + f[len(f)-1]
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
