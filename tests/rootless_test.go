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

// rootless sets up an ordinary user as a new user of bcvk would be set up:
// root's part (`make deps`) is done by the suite, and the user, with their
// own copy of this checkout, runs `make demo`, which builds the images in
// their rootless storage and boots one. It returns the demo's result and a
// function that runs the user's own bcvk as them. It needs root to create
// the user.
func rootless(t *testing.T) (demo result, bcvk func(timeout time.Duration, args ...string) result) {
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
	// No logind on these machines: the runtime directory it would make.
	runtimeDir := "/run/user/" + u.Uid
	checkout := filepath.Join(u.HomeDir, "bcvk")
	for _, c := range [][]string{
		{"mkdir", "-p", runtimeDir},
		{"chmod", "700", runtimeDir},
		{"chown", u.Uid + ":" + u.Gid, runtimeDir},
		// The home may predate the user (a reused machine): it must be theirs.
		{"chown", u.Uid + ":" + u.Gid, u.HomeDir},
		{"rm", "-rf", checkout},
		// What an earlier version of this test wrote: the user has only the
		// host's containers.conf, from make deps.
		{"rm", "-f", filepath.Join(u.HomeDir, ".config/containers/containers.conf")},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	copyCheckout(t, checkout, u)
	as := func(dir string, timeout time.Duration, argv ...string) result {
		t.Helper()
		// A login's environment, not the test's (no BCVK_* settings).
		cmd := exec.Command("runuser", append([]string{"-u", rootlessUser, "--", "env", "-i",
			"HOME=" + u.HomeDir, "USER=" + rootlessUser, "LOGNAME=" + rootlessUser, "XDG_RUNTIME_DIR=" + runtimeDir,
			"PATH=/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}, argv...)...)
		cmd.Dir = dir
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
		t.Logf("as %s: %s: exit %d (%.0f s)\n%s", rootlessUser, strings.Join(argv, " "), cmd.ProcessState.ExitCode(), time.Since(start).Seconds(), errb.String())
		return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	}
	// What the README's quick start tells a user to run. The images already
	// in the user's storage from an earlier run are kept when up to date,
	// as they would be for the user.
	demo = as(checkout, 45*time.Minute, "make", "demo")
	if demo.code != 0 {
		t.Fatalf("make demo as %s: exit %d\n%s", rootlessUser, demo.code, demo.stdout)
	}
	bin := filepath.Join(checkout, "bin", "bcvk")
	return demo, func(timeout time.Duration, args ...string) result {
		return as("/", timeout, append([]string{bin}, args...)...)
	}
}

// copyCheckout gives u a copy of this checkout at dst, as a clone would:
// the files git knows (committed or not, ignored ones left out), or the
// whole tree but bin/ and _output/ where there is no git.
func copyCheckout(t *testing.T, dst string, u *user.User) {
	t.Helper()
	src, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command("git", "-C", src, "-c", "safe.directory=*", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	var pack *exec.Cmd
	if err == nil {
		pack = exec.Command("tar", "-C", src, "--null", "--files-from=-", "--ignore-failed-read", "-cf", "-")
		pack.Stdin = strings.NewReader(string(list))
	} else {
		pack = exec.Command("tar", "-C", src, "--exclude=./bin", "--exclude=./_output", "--exclude=./.git", "-cf", "-", ".")
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	unpack := exec.Command("tar", "-C", dst, "--no-same-owner", "-xf", "-")
	pipe, err := pack.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	unpack.Stdin = pipe
	var errb strings.Builder
	pack.Stderr, unpack.Stderr = &errb, &errb
	if err := pack.Start(); err != nil {
		t.Fatal(err)
	}
	uerr := unpack.Run()
	if perr := pack.Wait(); perr != nil || uerr != nil {
		t.Fatalf("copying the checkout to %s: %v %v: %s", dst, perr, uerr, errb.String())
	}
	if out, err := exec.Command("chown", "-R", u.Uid+":"+u.Gid, dst).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
}

// The project plan promises no privilege escalation: an ordinary user with
// rootless podman boots, lists, reaches and removes VMs.
func TestRootless(t *testing.T) {
	demo, bcvk := rootless(t)
	// Whatever happens below, the user's containers go with the test.
	t.Cleanup(func() { bcvk(time.Minute, "ephemeral", "rm", "-f", "rl-life") })
	// make demo booted the sample image from the user's own storage with
	// the user's own runner image, and ran a command in it.
	for _, want := range []string{"Linux ", `PRETTY_NAME="Debian GNU/Linux`, "\nrunning\n"} {
		if !strings.Contains(demo.stdout, want) {
			t.Errorf("make demo's output lacks %q:\n%s", want, demo.stdout)
		}
	}
	r := bcvk(time.Minute, "images", "list", "--json")
	var imgs []struct{ Repository, Tag string }
	err := json.Unmarshal([]byte(r.stdout), &imgs)
	found := false
	for _, i := range imgs {
		found = found || i.Repository+":"+i.Tag == sampleImage()
	}
	if err != nil || !found {
		t.Errorf("the user's images list (the sample image, which make demo built): exit %d, %v, %q", r.code, err, r.stdout)
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
	if r := bcvk(time.Minute, "ephemeral", "ssh", name, "--", "sh", "-c", "echo in-guest; exit 42"); r.code != 42 || r.stdout != "in-guest\n" {
		t.Errorf("rootless ssh's exit status: exit %d stdout %q", r.code, r.stdout)
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
