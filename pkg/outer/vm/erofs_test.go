package vm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/spec"
)

func TestPodmanRunArgsMountsTheErofsCache(t *testing.T) {
	got, err := PodmanRunArgs(ContainerConfig{Name: "vm1", ImageID: "abc", RunnerImage: "r", StateDir: "/s",
		NoFile: 1, NProc: 1, ErofsDir: "/root/.cache/bcvk/erofs"})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.Index(got, "type=bind,source=/root/.cache/bcvk/erofs,destination=/bcvk/erofs")
	if i < 1 || got[i-1] != "--mount" {
		t.Fatalf("no read-write mount of the EROFS cache in %q", got)
	}
	if _, err := PodmanRunArgs(ContainerConfig{Name: "vm1", RunnerImage: "r", StateDir: "/s", ErofsDir: "/a\nb"}); err == nil {
		t.Fatal("a cache path with a line break was accepted")
	}
}

func TestPlanErofs(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	r := &Runtime{Host: CurrentHost()}
	img := &podman.Image{ID: strings.Repeat("a", 64), Size: 1234}
	sp := spec.New()
	sp.RootTransport = spec.RootVirtiofs
	if dir, err := r.planErofs(img, &sp); err != nil || dir != "" || sp.ImageID != "" {
		t.Fatalf("virtiofs: %q %v %q", dir, err, sp.ImageID)
	}
	for _, tr := range []string{spec.RootErofs, spec.RootAuto} {
		sp.RootTransport = tr
		dir, err := r.planErofs(img, &sp)
		if err != nil || filepath.Base(dir) != "erofs" || sp.ImageID != img.ID || sp.ImageSize != 1234 {
			t.Fatalf("%s: %q %v %+v", tr, dir, err, sp)
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: the cache directory is not private: %v", tr, err)
		}
		if err := sp.Validate(); err != nil {
			t.Fatal(err)
		}
	}
}

// A save that ran with an EROFS root is kept only with its own hard link
// to the very image it read.
func TestWarmFinishLinksTheErofsImage(t *testing.T) {
	base := t.TempDir()
	img := filepath.Join(base, "erofs", "x.erofs")
	_ = os.MkdirAll(filepath.Dir(img), 0o700)
	if err := os.WriteFile(img, []byte("EROFS"), 0o644); err != nil {
		t.Fatal(err)
	}
	warmBase := filepath.Join(base, "warm")
	_ = os.MkdirAll(warmBase, 0o700)
	save := func(transport, erofsFile string) *warmPlan {
		dir, _ := os.MkdirTemp(warmBase, ".k-")
		m := spec.WarmMeta{Accel: "tcg", KernelVersion: "6.12", RootTransport: transport}
		if err := m.Write(dir); err != nil {
			t.Fatal(err)
		}
		return &warmPlan{dir: dir, final: filepath.Join(warmBase, "k"+filepath.Base(dir)), erofsFile: erofsFile}
	}
	w := save(spec.RootErofs, img)
	w.finish()
	a, _ := os.Stat(img)
	b, err := os.Stat(filepath.Join(w.final, spec.WarmErofsFile))
	if err != nil || !os.SameFile(a, b) {
		t.Fatalf("the saved VM has no hard link to the image: %v", err)
	}
	// The image is gone (evicted): the save is not kept.
	w = save(spec.RootErofs, filepath.Join(base, "erofs", "gone.erofs"))
	w.finish()
	if _, err := os.Stat(w.final); err == nil {
		t.Fatal("a save without its EROFS image was kept")
	}
	w = save(spec.RootVirtiofs, "")
	w.finish()
	if _, err := os.Stat(filepath.Join(w.final, spec.WarmMetaFile)); err != nil {
		t.Fatal("a virtiofs save was not kept")
	}
}

func TestWarmKeyIncludesTheTransport(t *testing.T) {
	if warmRootKey(spec.RootVirtiofs) != "" || warmRootKey(spec.RootErofs) != "erofs" || warmRootKey(spec.RootAuto) != "auto" {
		t.Fatal("the warm key's transport")
	}
}

func TestRemoveErofsCache(t *testing.T) {
	cache := t.TempDir()
	h := Host{Getenv: func(k string) string {
		if k == "XDG_CACHE_HOME" {
			return cache
		}
		return ""
	}, UID: os.Getuid(), EUID: os.Geteuid()}
	base, err := h.ErofsBase()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a.erofs", "b.erofs", ".c.erofs.tmp-1", ".c.lock", "notes"} {
		if err := os.WriteFile(filepath.Join(base, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n, err := h.RemoveErofsCache()
	if err != nil || n != 2 {
		t.Fatalf("removed %d, %v; want 2", n, err)
	}
	left, _ := os.ReadDir(base)
	if len(left) != 3 {
		t.Fatalf("left %v; want the build's temporary file and lock, and the foreign file", left)
	}
}
