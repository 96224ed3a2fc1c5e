package hostcheck

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/outer/vm"
)

func TestRunReportsWhatIsMissing(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	dir := t.TempDir()
	mem := filepath.Join(dir, "meminfo")
	if err := os.WriteFile(mem, []byte("MemTotal: 4000000 kB\nMemAvailable: 1048576 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := Host{VM: vm.CurrentHost(), VsockDevice: filepath.Join(dir, "vsock"), MemInfo: mem}
	h.VM.KVMDevice, h.VM.TunDevice = filepath.Join(dir, "kvm"), filepath.Join(dir, "tun")
	fs := Run(context.Background(), h)
	got := map[string]Finding{}
	for _, f := range fs {
		got[f.Item] = f
		if f.Level != OK && f.Level != Info && f.Fix == "" {
			t.Errorf("%s is %s without a fix: %s", f.Item, f.Level, f.Detail)
		}
	}
	if f := got["podman"]; f.Level != Error || !strings.Contains(f.Fix, "apt-get install podman") {
		t.Errorf("podman: %+v", f)
	}
	if f := got["kvm"]; f.Level != Warning || !strings.Contains(f.Detail, "TCG") {
		t.Errorf("kvm: %+v", f)
	}
	if f := got["vsock"]; f.Level != OK || !strings.HasPrefix(f.Detail, "userspace backend") {
		t.Errorf("vsock: %+v", f)
	}
	if f := got["memory"]; f.Level != Warning || !strings.Contains(f.Detail, "1.0 GiB available") {
		t.Errorf("memory: %+v", f)
	}
	if !Failed(fs) {
		t.Error("a host without podman passed")
	}
}

// fakePodman answers Info and has the images in ids (ref -> ID).
type fakePodman struct{ ids map[string]string }

func (f fakePodman) Info(context.Context) (*podman.Info, error) {
	i := &podman.Info{}
	i.Version.Version, i.Host.CgroupVersion = "4.3.1", "v2"
	i.Host.OCIRuntime.Name, i.Host.OCIRuntime.Version = "runc", "runc version 1.1.5"
	return i, nil
}

func (f fakePodman) InspectImage(_ context.Context, ref string) (*podman.Image, error) {
	if id, ok := f.ids[ref]; ok {
		return &podman.Image{ID: id}, nil
	}
	return nil, podman.ErrNoImage
}

// The runner image is named with its ID, or as not present with a fix.
func TestRunNamesTheRunnerImageAndItsID(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	const runner, id = "localhost/bcvk-runner:0.1.0", "4afa44445bdf34734b9198f3095d19ea57a8d7561a43b400c54c00f562607e35"
	for _, tc := range []struct {
		ids        map[string]string
		level, has string
	}{
		{map[string]string{runner: id}, OK, runner + ", ID " + id},
		{nil, Error, runner + " is not present"},
	} {
		h := Host{Podman: fakePodman{tc.ids}, RunnerImage: runner, VM: vm.CurrentHost(), VsockDevice: "/nonexistent", MemInfo: "/nonexistent"}
		for _, f := range Run(context.Background(), h) {
			if f.Item != "runner image" {
				continue
			}
			if f.Level != tc.level || !strings.Contains(f.Detail, tc.has) {
				t.Errorf("runner image with %v: %+v, want %s and %q", tc.ids, f, tc.level, tc.has)
			}
			if f.Level == Error && !strings.Contains(f.Fix, "make runner-image") {
				t.Errorf("no fix: %+v", f)
			}
		}
	}
}
