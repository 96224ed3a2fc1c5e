package tests

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bootcImage has the bootc file layout: /root, /home, /mnt, /opt, /srv and
// /usr/local are links into /var, which tmpfiles fills at boot; a kargs.d;
// python3 and rsync (hack/build-sample-image.sh).
func bootcImage() string { return env("BCVK_SAMPLE_BOOTC_IMAGE", "localhost/bcvk-sample-bootc:latest") }

func needBootcImage(t *testing.T) {
	t.Helper()
	needPodman(t)
	if err := exec.Command("podman", "image", "exists", bootcImage()).Run(); err != nil {
		t.Fatalf("image %s is missing: run `make images`", bootcImage())
	}
}

// imageID and imageDigest are what the host's podman says.
func inspectImage(t *testing.T, ref, format string) string {
	t.Helper()
	out, err := exec.Command("podman", "image", "inspect", "--format", format, "--", ref).Output()
	if err != nil {
		t.Fatalf("podman image inspect %s: %v", ref, err)
	}
	return strings.TrimSpace(string(out))
}

// TestBootcLayout boots the bootc-layout image once, with the host's
// container storage, a share under /mnt (a link into /var) and a user the
// image does not have, and checks what a user of such an image meets:
// SSH as that user and as root, the image's kargs.d, the share, the host's
// images in the guest's podman, and real clients (scp, rsync, Ansible)
// through `ephemeral ssh-config`.
func TestBootcLayout(t *testing.T) {
	needBootcImage(t)
	name := "bcvk-test-bootc"
	cleanupContainer(t, name)
	share := t.TempDir()
	if err := os.WriteFile(filepath.Join(share, "hello"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The guest writes as root into the share (virtiofs keeps its uid).
	if err := os.Chmod(share, 0o777); err != nil {
		t.Fatal(err)
	}
	r := runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "run", "-d", "--name", name,
		"--bind-storage-ro", "--ssh-user", "tester", "--bind", share+":/mnt/data",
		"--karg", "bcvk.kargsd.second=user", bootcImage())
	if r.code != 0 {
		t.Fatalf("run -d: exit %d\n%s", r.code, r.stderr)
	}
	ssh := func(args ...string) result {
		return runBcvk(t, sharedState, nil, 3*time.Minute, append([]string{"ephemeral", "ssh", name}, args...)...)
	}
	r = runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "ssh-config", name)
	if r.code != 0 || !strings.Contains(r.stdout, "User tester") {
		t.Fatalf("ssh-config: exit %d, want User tester:\n%s%s", r.code, r.stdout, r.stderr)
	}
	conf := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(conf, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	// asRoot runs a guest command as root through the generated config:
	// the VM's key is root's too.
	asRoot := func(script string) (string, error) {
		out, err := exec.Command("ssh", "-F", conf, "-l", "root", name, script).CombinedOutput()
		return string(out), err
	}

	t.Run("ssh-user", func(t *testing.T) {
		r := ssh("--", "sh", "-c", `echo "$(id -un) $HOME $(pwd -P)"; test -w "$HOME" && echo home-writable`)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "tester /home/tester /var/home/tester\n") || !strings.Contains(r.stdout, "home-writable") {
			t.Errorf("ssh as the created user: exit %d, stdout %q (want tester, its home below /var/home)\n%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("root-home-is-a-link", func(t *testing.T) {
		out, err := asRoot(`echo "$(id -un) $(readlink /root) $(pwd -P)"; ls /root/.ssh 2>&1 | head -1`)
		if err != nil || !strings.HasPrefix(out, "root var/roothome /var/roothome\n") {
			t.Errorf("root's login: %v\n%s", err, out)
		}
	})
	t.Run("kargs.d", func(t *testing.T) {
		out, err := asRoot("cat /proc/cmdline")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		// The image's arguments, the other architecture's left out, and the
		// user's --karg after the image's (the kernel takes the last).
		first, second, user := strings.Index(out, "bcvk.kargsd=yes"), strings.Index(out, "bcvk.kargsd.second=2"), strings.Index(out, "bcvk.kargsd.second=user")
		if first < 0 || second < first || user < second || strings.Contains(out, "bcvk.kargsd.arm") {
			t.Errorf("/proc/cmdline: want bcvk.kargsd=yes, bcvk.kargsd.second=2, then the user's bcvk.kargsd.second=user, and no aarch64 argument:\n%s", out)
		}
	})
	t.Run("bind-under-mnt", func(t *testing.T) {
		out, err := asRoot(`cat /mnt/data/hello; findmnt -no TARGET,FSTYPE /var/mnt/data; echo from-guest > /mnt/data/back`)
		if err != nil || !strings.Contains(out, "from the host") || !strings.Contains(out, "/var/mnt/data virtiofs") {
			t.Errorf("the share at /mnt/data (a link to /var/mnt): %v\n%s", err, out)
		}
		if b, err := os.ReadFile(filepath.Join(share, "back")); err != nil || string(b) != "from-guest\n" {
			t.Errorf("the guest's write did not reach the host: %q, %v", b, err)
		}
	})
	t.Run("host-storage", func(t *testing.T) {
		id := inspectImage(t, sampleImage(), "{{.Id}}")
		digest := inspectImage(t, sampleImage(), "{{.Digest}}")
		out, err := asRoot(fmt.Sprintf(`podman images --no-trunc --format '{{.ID}} {{.Digest}}'; echo ---; podman run --rm --network none %s cat /etc/os-release; echo run=$?; touch %s/x 2>&1`, id, "/run/bcvk/host-storage"))
		if err != nil && !strings.Contains(out, "run=0") {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, id+" "+digest) {
			t.Errorf("podman images in the guest does not list the host's %s (%s %s):\n%s", sampleImage(), id, digest, out)
		}
		if !strings.Contains(out, "VERSION_CODENAME=trixie") || !strings.Contains(out, "run=0") {
			t.Errorf("podman run of the host's image in the guest failed:\n%s", out)
		}
		if !strings.Contains(out, "Read-only file system") {
			t.Errorf("the host's storage is writable in the guest:\n%s", out)
		}
	})
	t.Run("scp-rsync", func(t *testing.T) { realCopies(t, conf, name) })
	t.Run("ansible", func(t *testing.T) { ansible(t, conf, name) })
}

// realCopies moves a large file with scp and a tree of many files with
// rsync, both ways, and compares them.
func realCopies(t *testing.T, conf, name string) {
	dir := t.TempDir()
	big := make([]byte, 32<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(big)
	run := func(what string, args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out)
		}
	}
	run("scp to the guest", "scp", "-F", conf, filepath.Join(dir, "big"), name+":big")
	run("scp from the guest", "scp", "-F", conf, name+":big", filepath.Join(dir, "big.back"))
	back, _ := os.ReadFile(filepath.Join(dir, "big.back"))
	if sha256.Sum256(back) != want {
		t.Errorf("32 MiB through scp and back: content differs")
	}

	tree := filepath.Join(dir, "tree")
	for i := range 600 {
		p := filepath.Join(tree, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%03d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat(fmt.Sprint(i), i)), os.FileMode(0o600+(i%2)*0o44)); err != nil {
			t.Fatal(err)
		}
	}
	rsh := "ssh -F " + conf
	run("rsync to the guest", "rsync", "-a", "-e", rsh, tree+"/", name+":tree/")
	run("rsync from the guest", "rsync", "-a", "-e", rsh, name+":tree/", filepath.Join(dir, "tree.back")+"/")
	if a, b := digestTree(t, tree), digestTree(t, filepath.Join(dir, "tree.back")); a != b {
		t.Errorf("600 files through rsync and back: the trees differ (names, modes or contents)")
	}
}

// digestTree hashes names, modes and contents below root.
func digestTree(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s %v\n", rel, fi.Mode())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ansible runs ping and setup against the VM with the generated config.
func ansible(t *testing.T, conf, name string) {
	if _, err := exec.LookPath("ansible"); err != nil {
		t.Fatal("ansible is not installed: run `make deps`")
	}
	dir := t.TempDir()
	run := func(module string) string {
		t.Helper()
		cmd := exec.Command("ansible", "all", "-i", name+",", "-m", module, "--ssh-common-args", "-F "+conf, "-o")
		cmd.Env = append(os.Environ(), "ANSIBLE_HOME="+dir, "ANSIBLE_LOCAL_TEMP="+dir, "ANSIBLE_HOST_KEY_CHECKING=False",
			"ANSIBLE_PYTHON_INTERPRETER=auto_silent")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("ansible -m %s: %v\n%s", module, err, out.String())
		}
		return out.String()
	}
	if out := run("ping"); !strings.Contains(out, `"ping": "pong"`) {
		t.Errorf("ansible -m ping: no pong:\n%s", out)
	}
	out := run("setup")
	i := strings.Index(out, "{")
	if i < 0 {
		t.Fatalf("ansible -m setup printed no facts:\n%s", out)
	}
	var facts struct {
		Facts struct {
			Distribution string `json:"ansible_distribution"`
			User         string `json:"ansible_user_id"`
			Virt         string `json:"ansible_virtualization_role"`
		} `json:"ansible_facts"`
	}
	if err := json.Unmarshal([]byte(out[i:]), &facts); err != nil {
		t.Fatalf("ansible -m setup: %v\n%.2000s", err, out)
	}
	if facts.Facts.Distribution != "Debian" || facts.Facts.User != "tester" || facts.Facts.Virt != "guest" {
		t.Errorf("ansible facts: distribution %q, user %q, virtualization role %q; want Debian, tester, guest",
			facts.Facts.Distribution, facts.Facts.User, facts.Facts.Virt)
	}
}

// TestBootcReadOnlyRoot: some images have a read-only /root; SSH must not
// depend on writing /root/.ssh. The image's test-only unit makes /root
// read-only before tmpfiles and sshd run when it sees bcvk.test.ro-root.
func TestBootcReadOnlyRoot(t *testing.T) {
	needBootcImage(t)
	r := runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "run-ssh", "--karg", "bcvk.test.ro-root", bootcImage(), "--",
		"sh", "-c", `id -un; touch /root/probe 2>&1; mkdir /root/.ssh 2>&1; systemctl is-system-running --wait; systemctl --failed --no-legend`)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "root\n") {
		t.Fatalf("SSH into the image with a read-only /root: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Count(r.stdout, "Read-only file system") != 2 {
		t.Errorf("/root was not read-only (the test unit did not run?):\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "\nrunning\n") {
		t.Errorf("the system is not fully up (a failed unit from the key injection?):\n%s", r.stdout)
	}
}
