package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rootlessUser is the ordinary user the rootless tests run bcvk as.
const rootlessUser = "bcvk-ci"

// rootless prepares an ordinary user with rootless podman (its own
// containers.conf, runtime directory and copies of the images) and returns
// a function that runs bcvk as that user. It needs root to set things up.
func rootless(t *testing.T) func(timeout time.Duration, args ...string) result {
	t.Helper()
	needPodman(t)
	if os.Geteuid() != 0 {
		t.Skip("the rootless test sets up a user and needs root for that")
	}
	if _, err := user.Lookup(rootlessUser); err != nil {
		if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", rootlessUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v: %s", err, out)
		}
	}
	u, err := user.Lookup(rootlessUser)
	if err != nil {
		t.Fatal(err)
	}
	runtimeDir := "/run/user/" + u.Uid
	conf := filepath.Join(u.HomeDir, ".config/containers/containers.conf")
	for _, c := range [][]string{
		{"mkdir", "-p", runtimeDir, filepath.Dir(conf)},
		{"chmod", "700", runtimeDir},
		// The home may predate the user (a reused machine): it must be theirs.
		{"chown", u.Uid + ":" + u.Gid, u.HomeDir},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	// The same settings as the host's: runc, and limits runc may apply.
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = [\"nofile=16384:16384\", \"nproc=4096:4096\"]\n\n[engine]\nruntime = \"runc\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{runtimeDir, filepath.Join(u.HomeDir, ".config")} {
		if out, err := exec.Command("chown", "-R", u.Uid+":"+u.Gid, p).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v: %s", err, out)
		}
	}
	// A copy of bcvk the user can run, wherever the checkout is.
	bin := filepath.Join(t.TempDir(), "bcvk")
	b, err := os.ReadFile(bcvkBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Dir(bin), filepath.Dir(filepath.Dir(bin))} {
		_ = os.Chmod(d, 0o755)
	}
	as := func(timeout time.Duration, argv ...string) result {
		t.Helper()
		cmd := exec.Command("runuser", append([]string{"-u", rootlessUser, "--", "env",
			"HOME=" + u.HomeDir, "XDG_RUNTIME_DIR=" + runtimeDir, "PATH=/usr/local/bin:/usr/bin:/bin"}, argv...)...)
		cmd.Dir = "/"
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(timeout):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%v did not finish within %s:\n%s", argv, timeout, errb.String())
		}
		t.Logf("as %s: %s: exit %d\n%s", rootlessUser, strings.Join(argv, " "), cmd.ProcessState.ExitCode(), errb.String())
		return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	}
	// The user's own image store gets the runner and the sample image, the
	// same ones as root's (an older copy from an earlier run is replaced).
	for _, img := range []string{runnerImage(t), sampleImage()} {
		want, err := exec.Command("podman", "image", "inspect", "--format", "{{.Id}}", img).Output()
		if err != nil {
			t.Fatalf("podman image inspect %s: %v", img, err)
		}
		if r := as(time.Minute, "podman", "image", "inspect", "--format", "{{.Id}}", img); r.code == 0 && r.stdout == string(want) {
			continue
		}
		save := exec.Command("podman", "save", img)
		load := exec.Command("runuser", "-u", rootlessUser, "--", "env", "HOME="+u.HomeDir,
			"XDG_RUNTIME_DIR="+runtimeDir, "podman", "load", "-q")
		load.Dir = "/"
		pipe, err := save.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		load.Stdin = pipe
		if err := save.Start(); err != nil {
			t.Fatal(err)
		}
		out, err := load.CombinedOutput()
		if err != nil {
			// save would block on a pipe nobody reads any more.
			_ = save.Process.Kill()
		}
		if werr := save.Wait(); err != nil || werr != nil {
			t.Fatalf("copying %s to %s's storage: %v %v: %s", img, rootlessUser, err, werr, out)
		}
	}
	return func(timeout time.Duration, args ...string) result {
		return as(timeout, append([]string{bin}, args...)...)
	}
}

// The project plan promises no privilege escalation: an ordinary user with
// rootless podman boots, lists, reaches and removes VMs.
func TestRootless(t *testing.T) {
	bcvk := rootless(t)
	// Whatever happens below, the user's containers go with the test.
	t.Cleanup(func() { bcvk(time.Minute, "ephemeral", "rm", "-f", "rl-ssh", "rl-life") })
	r := bcvk(bootTimeout, "ephemeral", "run-ssh", "--name", "rl-ssh", sampleImage(), "--", "sh", "-c", "echo in-guest; exit 42")
	if r.code != 42 || r.stdout != "in-guest\n" {
		t.Fatalf("rootless run-ssh: exit %d, stdout %q", r.code, r.stdout)
	}

	// The options that depend on who runs bcvk: a file the user cannot
	// write is refused (QEMU in a rootful container could), and so is a
	// port the user may not open.
	// (In /var/tmp: the user must reach the file to be refused its writing.)
	notTheirs := "/var/tmp/bcvk-test-root-owned.img"
	if err := os.WriteFile(notTheirs, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(notTheirs) })
	if r := bcvk(time.Minute, "ephemeral", "run", "-d", "--name", "rl-bad", "--mount-disk-file", notTheirs, sampleImage()); r.code != 2 || !strings.Contains(r.stderr, "you cannot write "+notTheirs+": attach it read-only with :ro") {
		t.Errorf("rootless --mount-disk-file of root's file: exit %d, stderr %q", r.code, r.stderr)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil && strings.TrimSpace(string(b)) == "1024" {
		if r := bcvk(time.Minute, "ephemeral", "run", "-d", "--name", "rl-bad", "-p", "80:8000", sampleImage()); r.code != 2 || !strings.Contains(r.stderr, "may not listen on port 80") {
			t.Errorf("rootless -p 80:8000: exit %d, stderr %q", r.code, r.stderr)
		}
	}

	name := "rl-life"
	port := freePort(t)
	r = bcvk(bootTimeout, "ephemeral", "run", "-d", "--name", name, "--bind-storage-ro", "-p", port+":8000", sampleImage())
	if r.code != 0 {
		t.Fatalf("rootless run -d: exit %d", r.code)
	}
	// A published port, rootless: a socket-activated service in the guest
	// answers on the host's port.
	if r := bcvk(time.Minute, "ephemeral", "ssh", name, "--", "systemd-run", "--unit", "bcvk-test-publish",
		"systemd-socket-activate", "--listen", "0.0.0.0:8000", "--accept", "--inetd", "echo", "published-rootless"); r.code != 0 {
		t.Errorf("starting a service in the guest: exit %d, %s", r.code, r.stderr)
	} else if got := readPublished(t, port); got != "published-rootless\n" {
		t.Errorf("rootless -p %s:8000 gave %q", port, got)
	}
	r = bcvk(time.Minute, "ephemeral", "ps", "--json")
	var vms []struct {
		Name     string `json:"name"`
		StateDir string `json:"stateDir"`
		SSHReady bool   `json:"sshReady"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &vms); err != nil || len(vms) != 1 || vms[0].Name != name || !vms[0].SSHReady {
		t.Fatalf("rootless ps --json: %v %q", err, r.stdout)
	}
	if !strings.HasPrefix(vms[0].StateDir, "/run/user/") {
		t.Errorf("state directory %s is not in the user's runtime directory", vms[0].StateDir)
	}
	if r := bcvk(2*time.Minute, "ephemeral", "ssh", name, "--", "id", "-u"); r.code != 0 || r.stdout != "0\n" {
		t.Errorf("rootless ssh: exit %d stdout %q", r.code, r.stdout)
	}
	// The user's own container storage, shared with the guest.
	if r := bcvk(3*time.Minute, "ephemeral", "ssh", name, "--", "podman", "images", "--format", "{{.Repository}}:{{.Tag}}"); r.code != 0 || !strings.Contains(r.stdout, sampleImage()) {
		t.Errorf("rootless --bind-storage-ro: the guest's podman images: exit %d stdout %q", r.code, r.stdout)
	}
	if r := bcvk(time.Minute, "ephemeral", "rm", "-f", name); r.code != 0 {
		t.Errorf("rootless rm -f: exit %d", r.code)
	}
	r = bcvk(time.Minute, "ephemeral", "ps", "--json")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("after rm, ps --json = %q", r.stdout)
	}
	if _, err := os.Stat(vms[0].StateDir); !os.IsNotExist(err) {
		t.Errorf("state directory %s left behind", vms[0].StateDir)
	}
}
