package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// One detached VM serves every check that only needs a running VM: ssh,
// ps, logs, ssh-config with plain ssh, the bind shares; then rm and rm-all.
func TestDetachedLifecycle(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-life"
	cleanupContainer(t, name)
	rw, ro := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(rw, "hello"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "ro.txt"), []byte("read me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "run", "-d", "--name", name,
		"--label", "team=os", "--bind", rw+":/mnt/rw", "--ro-bind", ro, sampleImage())
	if r.code != 0 || strings.TrimSpace(r.stdout) != name {
		t.Fatalf("run -d: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}

	ssh := func(args ...string) result {
		return runBcvk(t, sharedState, nil, 2*time.Minute, append([]string{"ephemeral", "ssh", name}, args...)...)
	}
	t.Run("ssh", func(t *testing.T) {
		r := ssh("--", "sh", "-c", "echo hi; exit 5")
		if r.code != 5 || r.stdout != "hi\n" {
			t.Errorf("exit %d stdout %q", r.code, r.stdout)
		}
		r = ssh("-o", "ConnectTimeout=30", "--", "true")
		if r.code != 0 {
			t.Errorf("ssh options before --: exit %d\n%s", r.code, r.stderr)
		}
	})
	// Words after "--" are the guest's command even when they look like
	// ssh options: a ProxyCommand would run in the runner container.
	t.Run("command-is-not-ssh-options", func(t *testing.T) {
		r := ssh("--", "-oProxyCommand=sh -c 'touch /tmp/pwned; echo PWN\"\"ED >&2'")
		// The guest's shell names the word it could not run ("... No such
		// file or directory", as the word holds a "/").
		if r.code != 127 || !strings.Contains(r.stderr, "bash: line 1: -oProxyCommand=sh -c") || strings.Contains(r.stderr, "PWNED") {
			t.Errorf("-oProxyCommand=... as the command: exit %d, stderr %q", r.code, r.stderr)
		}
		if err := exec.Command("podman", "exec", name, "test", "-e", "/tmp/pwned").Run(); err == nil {
			t.Error("the ProxyCommand ran in the runner container")
		}
		for _, word := range []string{"-v", "-p1", "-luser"} {
			if r := ssh("--", word); r.code != 127 || !strings.Contains(r.stderr, word+": command not found") {
				t.Errorf("%s as the command: exit %d, stderr %q", word, r.code, r.stderr)
			}
		}
	})
	t.Run("bind", func(t *testing.T) {
		if r := ssh("--", "cat", "/mnt/rw/hello"); r.stdout != "from the host\n" {
			t.Errorf("guest read %q from the share (exit %d)", r.stdout, r.code)
		}
		if r := ssh("--", "sh", "-c", "echo from the guest > /mnt/rw/back"); r.code != 0 {
			t.Errorf("write to the read-write share failed: %s", r.stderr)
		}
		if b, err := os.ReadFile(filepath.Join(rw, "back")); err != nil || string(b) != "from the guest\n" {
			t.Errorf("host reads %q, %v", b, err)
		}
		roGuest := "/mnt/" + filepath.Base(ro)
		if r := ssh("--", "cat", roGuest+"/ro.txt"); r.stdout != "read me\n" {
			t.Errorf("read-only share: read %q", r.stdout)
		}
		r := ssh("--", "sh", "-c", "echo x > "+roGuest+"/new")
		if r.code == 0 || !strings.Contains(r.stderr, "Read-only file system") {
			t.Errorf("write to the read-only share: exit %d, stderr %q", r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(ro, "new")); err == nil {
			t.Error("the guest wrote into a read-only share")
		}
	})
	t.Run("ps", func(t *testing.T) {
		r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "ps", "--json")
		var vms []struct {
			Name     string            `json:"name"`
			State    string            `json:"state"`
			SSHReady bool              `json:"sshReady"`
			Labels   map[string]string `json:"labels"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &vms); err != nil {
			t.Fatalf("ps --json: %v: %q", err, r.stdout)
		}
		found := false
		for _, vm := range vms {
			if vm.Name == name {
				found = true
				if vm.State != "running" || !vm.SSHReady || vm.Labels["team"] != "os" || vm.Labels["bcvk.ephemeral"] != "1" {
					t.Errorf("ps shows %+v", vm)
				}
			}
		}
		if !found {
			t.Errorf("ps --json does not list %s: %s", name, r.stdout)
		}
	})
	t.Run("duplicate-name", func(t *testing.T) {
		r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "run", "-d", "--name", name, sampleImage())
		if r.code != 1 || !strings.Contains(r.stderr, "exists already") {
			t.Errorf("a second VM with the same name: exit %d, %q", r.code, r.stderr)
		}
	})
	t.Run("logs", func(t *testing.T) {
		r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "logs", name)
		if r.code != 0 || !strings.Contains(r.stdout, "Linux version") || !strings.Contains(r.stdout, "Welcome to") {
			t.Errorf("logs: exit %d, %d bytes", r.code, len(r.stdout))
		}
		// Started without --journal: the guest's journald was not told to
		// forward, and logs --journal says why it has nothing.
		r = runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "logs", "--journal", name)
		if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "started without --journal FILE") {
			t.Errorf("logs --journal without --journal: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if r := ssh("--", "ls", "/run/credentials/@system/"); r.code != 0 || strings.Contains(r.stdout, "journal.forward_to_socket") || !strings.Contains(r.stdout, "vmm.notify_socket") {
			t.Errorf("the guest's system credentials: exit %d, %q", r.code, r.stdout)
		}
	})
	t.Run("ssh-config", func(t *testing.T) {
		if _, err := exec.LookPath("ssh"); err != nil {
			t.Skip("no ssh client on the host")
		}
		r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "ssh-config", name)
		cfg := filepath.Join(t.TempDir(), "config")
		if err := os.WriteFile(cfg, []byte(r.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ssh", "-F", cfg, name, "echo", "plain-ssh").CombinedOutput()
		if err != nil || string(out) != "plain-ssh\n" {
			t.Errorf("plain ssh with the config: %v: %q", err, out)
		}
	})
	t.Run("security", func(t *testing.T) { checkSecurity(t, name) })
	t.Run("rm", func(t *testing.T) {
		r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "rm", name)
		if r.code == 0 || !strings.Contains(r.stderr, "is running") {
			t.Errorf("rm of a running VM without -f: exit %d, %q", r.code, r.stderr)
		}
		r = runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "rm-all", "-f")
		if r.code != 0 {
			t.Fatalf("rm-all -f: exit %d: %s", r.code, r.stderr)
		}
		out, _ := exec.Command("podman", "ps", "-a", "-q", "--filter", "label=bcvk.ephemeral=1").Output()
		if strings.TrimSpace(string(out)) != "" {
			t.Errorf("containers with our label left: %s", out)
		}
		assertNothingLeft(t, name, sharedState)
		if r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "rm", "-f", name); r.code != 0 {
			t.Errorf("rm -f of a removed VM: exit %d %s", r.code, r.stderr)
		}
		if r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "ssh", name, "--", "true"); r.code == 0 || !strings.Contains(r.stderr, "no such VM") {
			t.Errorf("ssh to a removed VM: exit %d %q", r.code, r.stderr)
		}
	})
}

// --execute; and, on the same boot, a cloud-init seed for an image without
// cloud-init: it boots with the seed attached and a warning, and the disk
// holds the seed and the meta-data bcvk made for a seed without one.
func TestExecute(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-exec"
	cleanupContainer(t, name)
	seed := t.TempDir()
	if err := os.WriteFile(filepath.Join(seed, "user-data"), []byte("#cloud-config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "run", "--name", name, "--cloud-init", seed,
		"--execute", "mount -o ro /dev/disk/by-id/virtio-cidata /mnt && ls /mnt && cat /mnt/meta-data; echo out; echo err >&2; exit 3", sampleImage())
	if r.code != 3 || r.stdout != "meta-data\nuser-data\ninstance-id: bcvk-"+name+"\nout\n" || !strings.Contains(r.stderr, "err\n") {
		t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "the image has no cloud-init") || !strings.Contains(r.stderr, "nothing in the guest will read it") {
		t.Errorf("no warning that the image has no cloud-init:\n%s", r.stderr)
	}
	assertNothingLeft(t, name, sharedState)
}

func TestImagesList(t *testing.T) {
	needPodman(t)
	r := runBcvk(t, sharedState, nil, time.Minute, "images", "list", "--json")
	var imgs []struct{ Repository, Tag string }
	if err := json.Unmarshal([]byte(r.stdout), &imgs); err != nil {
		t.Fatalf("images list --json: %v: %q", err, r.stdout)
	}
	want := sampleImage()
	for _, im := range imgs {
		if im.Repository+":"+im.Tag == want {
			return
		}
	}
	t.Errorf("images list --json lacks %s: %s", want, r.stdout)
}
