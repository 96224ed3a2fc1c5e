package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// erofsScript reports, from inside the guest, what its root is made of:
// the overlay on /, and the disk with bcvk's serial carrying a mounted
// EROFS (the overlay's lower layer lives in the old initramfs root, which
// the guest no longer sees, but /sys/fs/erofs lists each mounted one).
const erofsScript = `root=$(findmnt -n -o FSTYPE /)
echo "root-fs=$root" >&2
for d in /sys/block/*; do
  if [ "$(cat $d/serial 2>/dev/null)" = bcvk-root ]; then
    echo "root-disk=${d##*/}" >&2
    [ -e /sys/fs/erofs/${d##*/} ] && echo "erofs-mounted=${d##*/}" >&2
  fi
done
echo "virtiofs-mounts=$(grep -c ' virtiofs ' /proc/mounts)" >&2
echo "state=$(systemctl is-system-running || true)" >&2
echo written > /usr/bcvk-write-test && echo "root-writable=$(cat /usr/bcvk-write-test)" >&2`

// erofsFiles lists the cache's complete images and anything else in it
// that is not a lock.
func erofsFiles(t *testing.T, cache string) (images, other []string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(cache, "bcvk", "erofs"))
	if err != nil {
		t.Fatalf("the EROFS cache: %v", err)
	}
	for _, e := range entries {
		switch {
		case strings.HasSuffix(e.Name(), ".erofs") && !strings.HasPrefix(e.Name(), "."):
			images = append(images, filepath.Join(cache, "bcvk", "erofs", e.Name()))
		case !strings.HasSuffix(e.Name(), ".lock"):
			other = append(other, e.Name())
		}
	}
	return images, other
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// An EROFS root: the first VM builds the image once (a step on the host),
// boots from it with the writable overlay on top and no virtiofs at all;
// the second VM reuses the very file.
func TestErofsRootBuiltOnceAndReused(t *testing.T) {
	needPodman(t)
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	name := "bcvk-test-erofs"
	cleanupContainer(t, name)

	r := runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "run-ssh", "--name", name,
		"--root-transport", "erofs", sampleImage(), "--", "sh", "-c", erofsScript)
	if r.code != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "Building the EROFS image of the root") {
		t.Errorf("the first VM showed no build step")
	}
	if fs := guestField(t, r.stderr, "root-fs"); fs != "overlay" {
		t.Errorf("/ is %q, want overlay", fs)
	}
	disk := guestField(t, r.stderr, "root-disk")
	if disk == "" || guestField(t, r.stderr, "erofs-mounted") != disk {
		t.Errorf("the disk with serial bcvk-root (%q) carries no mounted EROFS", disk)
	}
	if n := guestField(t, r.stderr, "virtiofs-mounts"); n != "0" {
		t.Errorf("%s virtiofs mounts in a guest with an EROFS root and no shares", n)
	}
	if s := guestField(t, r.stderr, "state"); s != "running" {
		t.Errorf("systemctl is-system-running says %q", s)
	}
	if w := guestField(t, r.stderr, "root-writable"); w != "written" {
		t.Errorf("the root is not writable: %q", w)
	}
	images, other := erofsFiles(t, cache)
	if len(images) != 1 || len(other) != 0 {
		t.Fatalf("the cache holds images %v and other files %v; want one image and nothing else", images, other)
	}
	ino := inode(t, images[0])
	assertNothingLeft(t, name, sharedState)

	r = runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "run-ssh", "--name", name,
		"--root-transport", "erofs", sampleImage(), "--", "sh", "-c", erofsScript)
	if r.code != 0 {
		t.Fatalf("second VM: exit status %d, want 0; stderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "Building the EROFS image") || !strings.Contains(r.stderr, "Using the cached EROFS image of the root") {
		t.Errorf("the second VM did not reuse the cached EROFS image")
	}
	if fs := guestField(t, r.stderr, "root-fs"); fs != "overlay" {
		t.Errorf("second VM: / is %q, want overlay", fs)
	}
	if images2, _ := erofsFiles(t, cache); len(images2) != 1 || inode(t, images2[0]) != ino {
		t.Errorf("the cached image was replaced: %v", images2)
	}
	assertNothingLeft(t, name, sharedState)
}

// A warm start with an EROFS root: the save keeps its own link to the
// image, and the restore attaches it.
func TestErofsWarmStart(t *testing.T) {
	needPodman(t)
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	name := "bcvk-test-erofs-warm"
	cleanupContainer(t, name)
	args := append([]string{"ephemeral", "run-ssh", "--name", name, "--root-transport", "erofs"}, warmArgs...)
	args = append(args, sampleImage(), "--", "sh", "-c", "echo root-fs=$(findmnt -n -o FSTYPE /) >&2; ls /sys/fs/erofs >&2")
	for i, want := range []string{"Booting the kernel", "Restoring the saved VM"} {
		r := runBcvk(t, sharedState, nil, bootTimeout, args...)
		if r.code != 0 {
			t.Fatalf("run %d: exit status %d; stderr:\n%s", i+1, r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, want) {
			t.Errorf("run %d: no step %q", i+1, want)
		}
		if fs := guestField(t, r.stderr, "root-fs"); fs != "overlay" {
			t.Errorf("run %d: / is %q", i+1, fs)
		}
		assertNothingLeft(t, name, sharedState)
	}
	links, _ := filepath.Glob(filepath.Join(cache, "bcvk", "warm", "*", "root.erofs"))
	images, _ := erofsFiles(t, cache)
	if len(links) != 1 || len(images) != 1 || inode(t, links[0]) != inode(t, images[0]) {
		t.Errorf("the saved VM holds %v, the cache %v: want one hard link to the cached image", links, images)
	}
}

// A transport bcvk does not know is bad usage: nothing starts.
func TestErofsUnknownTransportIsAUsageError(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-erofs-bad"
	r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "run-ssh", "--name", name,
		"--root-transport", "nonsense", sampleImage(), "--", "true")
	if r.code != 2 || !strings.Contains(r.stderr, `--root-transport "nonsense": use virtiofs, erofs or auto`) {
		t.Fatalf("exit %d, stderr %q; want 2 and the flag named", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "Starting container") {
		t.Errorf("a container was started")
	}
	assertNothingLeft(t, name, sharedState)
}
