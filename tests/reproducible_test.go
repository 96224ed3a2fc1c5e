package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The runner image built twice from the same inputs (make runner-image into
// two temporary tags) has one image ID; the package list names every
// package with its version; the OCI archive of make runner-archive, loaded
// into an empty podman storage, gives the same ID under the same tag; and
// bcvk --version and bcvk system check name the image with its ID.
func TestReproducibleRunnerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds the runner image twice")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman is not installed: run `make deps`")
	}
	bcvkBinary(t) // fails early when bcvk is not built
	tmp := t.TempDir()
	tag := func(n string) string { return fmt.Sprintf("localhost/bcvk-runner-repro-%s:%d", n, os.Getpid()) }
	a, b := tag("a"), tag("b")
	t.Cleanup(func() {
		for _, img := range []string{a, b} {
			if out, err := exec.Command("podman", "rmi", "--ignore", img).CombinedOutput(); err != nil {
				t.Errorf("podman rmi %s: %v: %s", img, err, out)
			}
		}
	})
	makeIn := func(args ...string) string {
		t.Helper()
		start := time.Now()
		cmd := exec.Command("make", append([]string{"-C", "..", "--no-print-directory"}, args...)...)
		out, err := cmd.CombinedOutput()
		t.Logf("make %s (%.1f s):\n%s", strings.Join(args, " "), time.Since(start).Seconds(), tail(string(out), 6))
		if err != nil {
			t.Fatalf("make %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	imageID := func(store []string, img string) string {
		t.Helper()
		out, err := exec.Command("podman", append(store, "image", "inspect", "--format", "{{.Id}}", img)...).CombinedOutput()
		if err != nil {
			t.Fatalf("podman image inspect %s: %v: %s", img, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	pkgA, pkgB := filepath.Join(tmp, "packages-a.txt"), filepath.Join(tmp, "packages-b.txt")
	for _, x := range []struct{ img, pkgs string }{{a, pkgA}, {b, pkgB}} {
		if exec.Command("podman", "image", "exists", x.img).Run() == nil {
			t.Fatalf("%s exists already", x.img)
		}
		makeIn("runner-image", "RUNNER_IMAGE="+x.img, "RUNNER_PACKAGES="+x.pkgs)
	}
	idA, idB := imageID(nil, a), imageID(nil, b)
	t.Logf("image IDs: %s %s", idA, idB)
	if idA != idB {
		t.Errorf("two builds from the same inputs differ: %s is %s, %s is %s", a, idA, b, idB)
	}

	// The package list: the image's own, sorted, the same for both builds.
	lists := map[string]string{}
	for _, p := range []string{pkgA, pkgB} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("the package list was not written: %v", err)
		}
		var pkgs []string
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if !strings.HasPrefix(l, "#") {
				pkgs = append(pkgs, l)
			}
		}
		lists[p] = strings.Join(pkgs, "\n")
	}
	if !regexp.MustCompile(`(?m)^qemu-system-x86\t[0-9]\S*\tamd64$`).MatchString(lists[pkgA]) {
		t.Errorf("the package list lacks qemu-system-x86 with its version:\n%s", tail(lists[pkgA], 20))
	}
	if lists[pkgA] != lists[pkgB] {
		t.Error("the two builds' package lists differ")
	}
	if data, _ := os.ReadFile(pkgA); !strings.Contains(string(data), "# ID "+idA+"\n") {
		t.Errorf("the package list does not name the image ID %s", idA)
	}

	// Nothing changed: no build.
	if out := makeIn("runner-image", "RUNNER_IMAGE="+a, "RUNNER_PACKAGES="+pkgA); !strings.Contains(out, "is up to date") {
		t.Errorf("an unchanged runner image was built again:\n%s", out)
	}

	// make runner-archive, loaded where there is no image at all: a podman
	// storage of its own.
	archive := filepath.Join(tmp, "runner.oci.tar")
	makeIn("runner-archive", "RUNNER_IMAGE="+a, "RUNNER_PACKAGES="+pkgA, "RUNNER_ARCHIVE="+archive)
	store := []string{"--root", filepath.Join(tmp, "storage"), "--runroot", filepath.Join(tmp, "run"), "--storage-driver", "vfs"}
	if out, err := exec.Command("podman", append(store, "load", "--quiet", "-i", archive)...).CombinedOutput(); err != nil {
		t.Fatalf("podman load: %v: %s", err, out)
	} else {
		t.Logf("podman load: %s", strings.TrimSpace(string(out)))
	}
	if id := imageID(store, a); id != idA {
		t.Errorf("the loaded archive is %s %s, built %s", a, id, idA)
	}

	// bcvk names the runner image and its ID.
	r := runBcvk(t, t.TempDir(), nil, time.Minute, "--runner-image", a, "--version")
	if want := "runner image " + a + ", ID " + idA; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("bcvk --version: exit %d, %q; want %q", r.code, r.stdout, want)
	}
	r = runBcvk(t, t.TempDir(), nil, time.Minute, "--runner-image", a+"-missing", "--version")
	if want := "runner image " + a + "-missing, not present"; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("bcvk --version: exit %d, %q; want %q", r.code, r.stdout, want)
	}
	r = runBcvk(t, t.TempDir(), nil, time.Minute, "--runner-image", a, "system", "check", "--json")
	var fs []struct{ Item, Level, Detail string }
	if err := json.Unmarshal([]byte(r.stdout), &fs); err != nil {
		t.Fatalf("bcvk system check --json: %v: %q", err, r.stdout)
	}
	found := false
	for _, f := range fs {
		if f.Item == "runner image" {
			found = true
			if want := a + ", ID " + idA; f.Level != "ok" || f.Detail != want {
				t.Errorf("system check: %+v, want ok and %q", f, want)
			}
		}
	}
	if !found {
		t.Errorf("system check does not name the runner image: %s", r.stdout)
	}
}
