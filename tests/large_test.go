package tests

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// largeImage holds about 80-100k files (hack/build-large-image.sh).
func largeImage() string { return env("BCVK_LARGE_IMAGE", "localhost/bcvk-test-large:latest") }

// walkScript walks the whole root and opens and reads every file under
// /usr, then asks systemd whether the system still answers: a guest whose
// virtiofsd ran out of descriptors cannot even load libraries any more.
// Each file's first block is enough to open it on the host (it costs
// virtiofsd a descriptor, as a whole read would); reading all 1.4 GB under
// emulation took minutes and tested nothing more.
const walkScript = `n=$(find / -xdev 2>/dev/null | wc -l); echo "files=$n"
find /usr -xdev -type f -print0 | xargs -0 head -qc1 >/dev/null; echo "read=$?"
echo "state=$(systemctl is-system-running)"`

// TestLargeImageWalk boots the large image and walks it, with each root
// transport bcvk offers.
func TestLargeImageWalk(t *testing.T) {
	needPodman(t)
	if err := exec.Command("podman", "image", "exists", largeImage()).Run(); err != nil {
		t.Fatalf("image %s is missing: run `make images`", largeImage())
	}
	for _, transport := range rootTransports() {
		t.Run(transport, func(t *testing.T) {
			args := []string{"ephemeral", "run-ssh"}
			if transport != "default" {
				args = append(args, "--root-transport", transport)
			}
			r := runBcvk(t, sharedState, nil, 20*time.Minute, append(args, largeImage(), "--", "sh", "-c", walkScript)...)
			if r.code != 0 {
				t.Fatalf("walk: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			files := 0
			for _, l := range strings.Split(r.stdout, "\n") {
				if v, ok := strings.CutPrefix(l, "files="); ok {
					files, _ = strconv.Atoi(v)
				}
			}
			if files < 70000 {
				t.Errorf("find / -xdev counted %d entries, want the large image's 70k+:\n%s", files, r.stdout)
			}
			if !strings.Contains(r.stdout, "read=0") || !strings.Contains(r.stdout, "state=running") {
				t.Errorf("reading every file under /usr failed, or the system stopped answering:\n%s\n%s", r.stdout, r.stderr)
			}
			if strings.Contains(r.stderr+r.stdout, "Too many open files") {
				t.Errorf("the guest ran out of files:\n%s\n%s", r.stdout, r.stderr)
			}
		})
	}
}

// TestDescriptorWatch forces a low descriptor limit on the VM's container
// (BCVK_TEST_NOFILE, test-only) and holds more image files open in the
// guest than it allows: bcvk must say so, plainly, while the command runs
// and in `logs`, rather than leave a silently broken VM. Once the files
// are closed the guest gives the inodes back and works again.
func TestDescriptorWatch(t *testing.T) {
	needPodman(t)
	t.Setenv("BCVK_TEST_NOFILE", "3000")
	name := "bcvk-test-fds"
	cleanupContainer(t, name)
	// The root on virtiofs (an EROFS root needs no descriptor per file).
	r := runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "run", "-d", "--name", name, "--root-transport", "virtiofs", sampleImage())
	if r.code != 0 {
		t.Fatalf("run -d: exit %d\n%s", r.code, r.stderr)
	}
	// Open (and keep open) 2900 files of the image: the guest cannot give
	// these inodes back, so the count passes 80% and then the limit.
	hold := `ulimit -n 8192; i=0
for f in $(find /usr/lib /usr/share -xdev -type f | head -n 2900); do exec {fd}<"$f" 2>/dev/null && i=$((i+1)); done
echo "held=$i"; sleep 4`
	r = runBcvk(t, sharedState, nil, 5*time.Minute, "ephemeral", "ssh", name, "--", "bash", "-c", hold)
	// The first warning comes at 80% of the usable descriptors; when the
	// count passes that and the limit between two samples (a loaded host),
	// the warning that the limit was reached is the first.
	high := strings.Contains(r.stderr, "holds") && strings.Contains(r.stderr, "file descriptors it can use for files (limit 3000)")
	if !high && !strings.Contains(r.stderr, "has run out of file descriptors") {
		t.Errorf("no warning while the guest held its files open (exit %d):\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "has run out of file descriptors") || !strings.Contains(r.stderr, "--root-transport erofs") {
		t.Errorf("no plain message when the limit was reached:\n%s", r.stderr)
	}
	r = runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "logs", name)
	if !strings.Contains(r.stderr, "bcvk warning: virtiofsd for the image root has run out of file descriptors") {
		t.Errorf("`logs` does not show the warning:\n%s", r.stderr)
	}
	// The files are closed now; the guest gives the inodes back when bcvk
	// asks (or as it needs them), and works again.
	r = runBcvk(t, sharedState, nil, 3*time.Minute, "ephemeral", "ssh", name, "--", "sh", "-c", "sleep 8; systemctl is-system-running; ls /usr/lib | wc -l")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "running\n") {
		t.Errorf("after the files were closed the guest does not work: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// rootTransports are the root transports to test: every one that
// `--root-transport` offers (auto resolves to one of them), or the only
// one when bcvk has no choice.
func rootTransports() []string {
	out, _ := exec.Command(env("BCVK", "../bin/bcvk"), "ephemeral", "run", "--help").CombinedOutput()
	if !strings.Contains(string(out), "--root-transport") {
		return []string{"default"}
	}
	return []string{"virtiofs", "erofs"}
}
