package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// started is a bcvk run in the background.
type started struct {
	cmd  *exec.Cmd
	errb *bytes.Buffer
	done chan error
}

func startBcvk(t *testing.T, args ...string) *started {
	t.Helper()
	cmd, _, errb := bcvkCmd(t, sharedState, nil, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &started{cmd: cmd, errb: errb, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return s
}

// end waits for the run to end and returns its exit status.
func (s *started) end(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(within):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Fatalf("bcvk did not end within %s; stderr:\n%s", within, s.errb.String())
	}
	return s.cmd.ProcessState.ExitCode()
}

// commandRunning reports whether the VM's container runs an ssh session
// with the given command.
func commandRunning(name, command string) bool {
	out, err := exec.Command("podman", "top", name, "args").Output()
	return err == nil && strings.Contains(string(out), command)
}

// waitCommand waits until run-ssh's command runs in the guest.
func (s *started) waitCommand(t *testing.T, name, command string) {
	t.Helper()
	waitUntil(t, s.done, bootTimeout, func() bool { return commandRunning(name, command) },
		func() string { return "the command to run:\n" + tail(s.errb.String(), 15) })
}

// signalInContainer sends sig to the container's first process whose name
// starts with proc.
func signalInContainer(name, proc, sig string) error {
	out, err := exec.Command("podman", "top", name, "pid", "comm").Output()
	if err != nil {
		return fmt.Errorf("podman top %s: %v", name, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 && strings.HasPrefix(f[1], proc) {
			if out, err := exec.Command("podman", "exec", name, "sh", "-c", "kill -"+sig+" "+f[0]).CombinedOutput(); err != nil {
				return fmt.Errorf("kill -%s %s: %v %s", sig, proc, err, out)
			}
			return nil
		}
	}
	return fmt.Errorf("no %s in the container:\n%s", proc, out)
}

// smallFileSystem mounts a tmpfs of the given size (root only) for the
// test's duration.
func smallFileSystem(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	return dir
}

func strayProcesses(name string) string {
	out, _ := exec.Command("pgrep", "-af", name).Output()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && !strings.Contains(l, "pgrep") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// SIGKILL cannot be caught: the container stays; ps shows it as orphaned
// and leaves it, and rm removes it because its owner is gone.
func TestSIGKILLLeavesOnlyWhatTheNextBcvkRemoves(t *testing.T) {
	needPodman(t)
	for _, when := range []string{"boot", "command"} {
		t.Run(when, func(t *testing.T) {
			name := "bcvk-test-kill-" + when
			cleanupContainer(t, name)
			args := []string{"ephemeral", "run-ssh", "--memory", "1G"}
			if when == "command" {
				args = append([]string{"ephemeral", "run-ssh"}, warmArgs...) // the boot is not under test
			}
			s := startBcvk(t, append(args, "--name", name, sampleImage(), "--", "sleep", "600")...)
			if when == "boot" {
				waitUntil(t, s.done, bootTimeout, func() bool {
					return strings.Contains(s.errb.String(), "Booting the kernel") && len(containersNamed(t, name)) > 0
				}, func() string { return "the boot:\n" + s.errb.String() })
			} else {
				s.waitCommand(t, name, "sleep 600")
			}
			if err := s.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-s.done
			if len(containersNamed(t, name)) == 0 {
				t.Fatal("the container is gone already: this test needs the leak SIGKILL leaves")
			}
			// Listing changes nothing: ps shows the orphan and says how to
			// remove it.
			r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "ps", "--json")
			var vms []psRow
			if err := json.Unmarshal([]byte(r.stdout), &vms); err != nil {
				t.Fatalf("ps --json: %v: %q", err, r.stdout)
			}
			listed := slices.Contains(vms, psRow{Name: name, Orphaned: true})
			if r.code != 0 || !listed || !strings.Contains(r.stderr, "ephemeral rm "+name+"` removes it") {
				t.Errorf("ps does not show the orphan: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
			}
			if len(containersNamed(t, name)) == 0 {
				t.Fatal("ps removed the orphan's container: listing must change nothing")
			}
			// rm removes it, running or not, and says whose it was.
			r = runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "rm", name)
			if r.code != 0 || r.stdout != name+"\n" || !strings.Contains(r.stderr, "removed VM "+name+": the bcvk that started it") {
				t.Errorf("rm of the orphan: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
			}
			assertNothingLeft(t, name, sharedState)
			waitUntil(t, nil, 30*time.Second, func() bool { return strayProcesses(name) == "" },
				func() string { return "stray processes to end: " + strayProcesses(name) })
		})
	}
}

// psRow is what the orphan test reads of `ps --json`.
type psRow struct {
	Name     string `json:"name"`
	Orphaned bool   `json:"orphaned"`
}

// SIGTERM while the command runs: status 143, the guest and container gone.
func TestSIGTERMDuringCommand(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-sigterm"
	cleanupContainer(t, name)
	s := startBcvk(t, append(append([]string{"ephemeral", "run-ssh"}, warmArgs...), "--name", name, sampleImage(), "--", "sleep", "600")...)
	s.waitCommand(t, name, "sleep 600")
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.end(t, time.Minute); code != 143 {
		t.Errorf("exit %d after SIGTERM, want 143", code)
	}
	assertNothingLeft(t, name, sharedState)
	waitUntil(t, nil, 30*time.Second, func() bool { return strayProcesses(name) == "" },
		func() string { return "stray processes to end: " + strayProcesses(name) })
}

// The VM ends under a running command, in every way it can: bcvk says how,
// exits with ssh's 255, and leaves nothing.
func TestVMEndsUnderCommand(t *testing.T) {
	needPodman(t)
	kill := func(proc string) func(t *testing.T, name string) {
		return func(t *testing.T, name string) {
			if err := signalInContainer(name, proc, "KILL"); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name    string
		command []string
		fault   func(t *testing.T, name string)
		want    string
		code    int
	}{
		{"qemu-killed", []string{"sleep", "600"}, kill("qemu-system"), "QEMU was killed by SIGKILL", 255},
		// Pinned to virtiofs: with an EROFS root and no shares there is no virtiofsd.
		{"virtiofsd-killed", []string{"sleep", "600"}, kill("virtiofsd"), "virtiofsd was killed by SIGKILL, so the VM was stopped", 255},
		{"podman-kill", []string{"sleep", "600"}, func(t *testing.T, name string) {
			if out, err := exec.Command("podman", "kill", name).CombinedOutput(); err != nil {
				t.Fatalf("podman kill: %v %s", err, out)
			}
		}, "the VM ended while the command ran: its container exited with status 137", 137},
		{"poweroff", []string{"sh", "-c", "systemctl poweroff; sleep 600"}, nil, "the guest powered off", 255},
		{"reboot", []string{"sh", "-c", "systemctl reboot; sleep 600"}, nil, "the guest rebooted", 255},
		{"panic", []string{"sh", "-c", "echo c > /proc/sysrq-trigger; sleep 600"}, nil, "the guest kernel panicked: Kernel panic - not syncing: sysrq triggered crash", 255},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // -parallel defaults to GOMAXPROCS: two VMs at a time here
			name := "bcvk-test-ends-" + c.name
			cleanupContainer(t, name)
			// The boot is not under test here: a warm restore, except on a
			// virtiofs root, which no other test saves a warm VM of (the
			// cold save boot cost more than a plain boot).
			args := append(append([]string{"ephemeral", "run-ssh"}, warmArgs...), "--timeout", "15m", "--name", name)
			if c.name == "virtiofsd-killed" {
				args = []string{"ephemeral", "run-ssh", "--memory", "1G", "--timeout", "15m", "--name", name, "--root-transport", "virtiofs"}
			}
			args = append(append(args, sampleImage(), "--"), c.command...)
			s := startBcvk(t, args...)
			s.waitCommand(t, name, "sleep 600")
			if c.fault != nil {
				c.fault(t, name)
			}
			code := s.end(t, 3*time.Minute)
			stderr := s.errb.String()
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, want %d and %q; stderr:\n%s", code, c.code, c.want, tail(stderr, 30))
			}
			assertNothingLeft(t, name, sharedState)
		})
	}
}

// sshd never starts (over TCP: over vsock, systemd starts sshd per
// connection without ssh.service): the wait ends at --timeout with the step
// and the last console lines.
func TestSSHNeverStarts(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-nossh"
	cleanupContainer(t, name)
	r := runBcvk(t, sharedState, nil, 6*time.Minute, "ephemeral", "run-ssh", "--memory", "1G", "--timeout", "60s",
		"--karg", "systemd.mask=ssh.service", "--ssh-transport", "tcp", "--name", name, sampleImage(), "--", "true")
	for _, want := range []string{`timed out after 1m0s at step "Starting systemd and sshd"`, "raise --timeout", "Last console lines:"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, tail(r.stderr, 40))
		}
	}
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	if r.elapsed > 150*time.Second+time.Minute {
		t.Errorf("took %s for a 150 s timeout", r.elapsed)
	}
	assertNothingLeft(t, name, sharedState)
}

// Ctrl-C during the install: no disk, no work directory, no container.
func TestToDiskInterrupted(t *testing.T) {
	needPodman(t)
	dir := t.TempDir()
	s := startBcvk(t, "to-disk", sampleImage(), filepath.Join(dir, "x.qcow2"))
	waitUntil(t, s.done, bootTimeout, func() bool {
		return strings.Contains(s.errb.String(), "bootc (bcvk test fixture): [") && strings.Contains(s.errb.String(), "] copying the image")
	},
		func() string { return "the install to copy:\n" + tail(s.errb.String(), 15) })
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := s.end(t, time.Minute); code != 130 {
		t.Errorf("exit %d after SIGINT, want 130", code)
	}
	assertOnlyFiles(t, dir)
	assertNoToDiskContainers(t)
}

// A target file system that cannot hold the disk: refused before anything
// starts.
func TestToDiskFullFileSystem(t *testing.T) {
	needPodman(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system needs root")
	}
	dir := smallFileSystem(t, "200m")
	r := runBcvk(t, sharedState, nil, time.Minute, "to-disk", sampleImage(), filepath.Join(dir, "x.raw"))
	if r.code != 1 || !strings.Contains(r.stderr, "not enough free space in "+dir) {
		t.Errorf("exit %d:\n%s", r.code, r.stderr)
	}
	assertOnlyFiles(t, dir)
	assertNoToDiskContainers(t)
}

// Five VMs at once on a 2-CPU host: all come up (slowly), each with its
// own vsock backend, no clashes.
func TestFiveAtOnce(t *testing.T) {
	needPodman(t)
	var wg sync.WaitGroup
	res := make([]result, 5)
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := tryBcvk(t, sharedState, nil, 12*time.Minute, "ephemeral", "run-ssh", "--memory", "1G", "--timeout", "10m",
				sampleImage(), "--", "sh", "-c", "echo $(cat /etc/machine-id) ${SSH_CONNECTION%% *} ok")
			if err != nil {
				t.Errorf("VM %d: %v", i, err)
			}
			res[i] = r
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, r := range res {
		t.Logf("VM %d: exit %d in %s", i, r.code, r.elapsed.Round(time.Second))
		if r.code != 0 || !strings.HasSuffix(r.stdout, " ok\n") {
			t.Errorf("VM %d: exit %d, stdout %q\n%s", i, r.code, r.stdout, tail(r.stderr, 20))
			continue
		}
		// Each over vsock, on its own backend: sshd sees no IP address.
		if !strings.Contains(r.stdout, " UNKNOWN ok") {
			t.Errorf("VM %d: SSH did not come over vsock: %q", i, r.stdout)
		}
		if seen[r.stdout] {
			t.Errorf("two VMs share a machine-id: %s", r.stdout)
		}
		seen[r.stdout] = true
	}
	out, _ := exec.Command("podman", "ps", "-a", "-q", "--filter", "label=bcvk.ephemeral=1").Output()
	if strings.TrimSpace(string(out)) != "" {
		t.Errorf("containers left: %s", out)
	}
}

// QEMU crashing before the guest's init ran (QEMU 10's TCG aborts now and
// then while the guest kernel sets up PCI) costs a restart, not the run.
// The crash is provoked the way the real one ends QEMU: SIGABRT, once the
// guest kernel prints (a QEMU killed before bcvk-inner even reached its
// monitor is a failed start, not this crash; with an EROFS root QEMU gets
// there in under a second).
func TestQEMUCrashEarlyRestarts(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-early-crash"
	cleanupContainer(t, name)
	s := startBcvk(t, "ephemeral", "run-ssh", "--accel", "tcg", "--memory", "1G", "--name", name, sampleImage(), "--", "true")
	abort := func() bool {
		if exec.Command("podman", "exec", name, "test", "-s", "/bcvk/state/console.log").Run() != nil {
			return false
		}
		return signalInContainer(name, "qemu-system", "ABRT") == nil
	}
	waitUntil(t, s.done, 2*time.Minute, abort, func() string { return "QEMU to start:\n" + tail(s.errb.String(), 15) })
	code := s.end(t, bootTimeout)
	stderr := s.errb.String()
	if code != 0 || !strings.Contains(stderr, "QEMU crashed early in the boot, before the guest ran anything (QEMU was killed by SIGABRT): starting the VM again") {
		t.Errorf("exit %d, want 0 after one restart; stderr:\n%s", code, tail(stderr, 30))
	}
	assertNothingLeft(t, name, sharedState)
}

// The userspace vsock device has, rarely and with several VMs starting at
// once, stopped answering for the rest of a boot: the guest came up, but
// neither its systemd's report nor SSH ever arrived. bcvk-inner takes a
// device that answers no dial for a minute after the guest init loaded the
// vsock driver for dead, and boots the VM again. Provoked here by stopping
// vhost-device-vsock (SIGSTOP) once the image's init has taken over.
func TestVsockDeviceSilentRestarts(t *testing.T) {
	needPodman(t)
	if _, err := os.Stat("/dev/vhost-vsock"); err == nil {
		t.Skip("this host has the kernel's vhost-vsock: there is no userspace device to stop")
	}
	name := "bcvk-test-vsock-silent"
	cleanupContainer(t, name)
	s := startBcvk(t, "ephemeral", "run-ssh", "--ssh-transport", "vsock", "--memory", "1G", "--name", name, sampleImage(), "--", "sh", "-c", "exit 7")
	stop := func() bool {
		return strings.Contains(s.errb.String(), "Starting systemd and sshd") && signalInContainer(name, "vhost-device", "STOP") == nil
	}
	waitUntil(t, s.done, bootTimeout, stop, func() string { return "the image's init to take over:\n" + tail(s.errb.String(), 15) })
	code := s.end(t, bootTimeout+2*time.Minute)
	stderr := s.errb.String()
	if code != 7 || !strings.Contains(stderr, "the guest's vsock device answered nothing for 1m0s after the guest init had loaded its driver: starting the VM again") {
		t.Errorf("exit %d, want the command's 7 after one restart; stderr:\n%s", code, tail(stderr, 30))
	}
	assertNothingLeft(t, name, sharedState)
	waitUntil(t, nil, 30*time.Second, func() bool { return strayProcesses(name) == "" },
		func() string { return "stray processes to end: " + strayProcesses(name) })
}

// The target file system fills up during the install (here: another file
// takes the space once the copy has begun). QEMU reports the failed writes
// to the guest as I/O errors (werror=report), the install fails, and bcvk
// says so and leaves no disk, no work directory and no container.
func TestToDiskRunsOutOfSpace(t *testing.T) {
	needPodman(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system needs root")
	}
	dir := smallFileSystem(t, "1g")
	s := startBcvk(t, "to-disk", sampleImage(), filepath.Join(dir, "x.raw"))
	waitUntil(t, s.done, bootTimeout, func() bool {
		return strings.Contains(s.errb.String(), "bootc (bcvk test fixture): [") && strings.Contains(s.errb.String(), "] copying the image")
	},
		func() string { return "the install to copy:\n" + tail(s.errb.String(), 15) })
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	fill, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	leave := int64(8 << 20)
	if err := syscall.Fallocate(int(fill.Fd()), 0, 0, int64(st.Bavail)*st.Bsize-leave); err != nil {
		t.Fatalf("taking the space: %v", err)
	}
	fill.Close()
	code := s.end(t, 10*time.Minute)
	stderr := s.errb.String()
	if code != 1 || !strings.Contains(stderr, dir+" ran out of space during the install") || !strings.Contains(stderr, "bootc install to-disk failed") {
		t.Errorf("exit %d, want 1 and the failed install; stderr:\n%s", code, tail(stderr, 30))
	}
	assertOnlyFiles(t, dir, "fill")
	assertNoToDiskContainers(t)
}
