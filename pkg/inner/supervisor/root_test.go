package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/inner/kernel"
	"github.com/bcvk/bcvk/pkg/inner/qemu"
	"github.com/bcvk/bcvk/pkg/spec"
)

// With an EROFS root disk, only the shares get a virtiofsd.
func TestMachineConfigErofsRootHasNoRootVirtiofsd(t *testing.T) {
	o := DefaultOptions()
	sp := spec.New()
	sp.Binds = []spec.Bind{{Host: "/h", GuestPath: "/mnt/h"}}
	cfg := qemu.Config{VirtiofsSocket: "/run/bcvk/virtiofs.sock", RootDisk: "/bcvk/erofs/x.erofs", RootDiskSerial: spec.ErofsSerial,
		Shares: []qemu.Share{{Tag: "bind0", Socket: "/run/bcvk/share0.sock"}}}
	mc := machineConfig(o, sp, cfg)
	if len(mc.Helpers) != 1 || mc.Helpers[0].Socket != "/run/bcvk/share0.sock" {
		t.Fatalf("helpers %+v: want only the share's virtiofsd", mc.Helpers)
	}
	cfg.RootDisk = ""
	if mc := machineConfig(o, sp, cfg); len(mc.Helpers) != 2 || mc.Helpers[0].Socket != cfg.VirtiofsSocket {
		t.Fatalf("virtiofs root: helpers %+v", mc.Helpers)
	}
}

// modulesTree is an image root whose kernel has the given modules.
func modulesTree(t *testing.T, mods ...string) kernel.Kernel {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "usr/lib/modules/6.12")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var dep strings.Builder
	for _, m := range mods {
		dep.WriteString("kernel/" + m + ".ko:\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return kernel.Kernel{Version: "6.12", Root: root, ModulesDir: "/usr/lib/modules/6.12"}
}

func TestChooseRoot(t *testing.T) {
	id := strings.Repeat("ab", 32)
	good := modulesTree(t, "virtio_blk", "erofs")
	bare := modulesTree(t, "virtio_blk")
	for _, tc := range []struct {
		asked   string
		k       kernel.Kernel
		noCache bool // no cache directory mounted
		size    int64
		want    string
		wantErr string
	}{
		{asked: "", k: good, want: spec.RootVirtiofs},
		{asked: spec.RootVirtiofs, k: good, want: spec.RootVirtiofs},
		{asked: spec.RootErofs, k: good, want: spec.RootErofs},
		{asked: spec.RootErofs, k: bare, wantErr: "has no erofs"},
		{asked: spec.RootErofs, k: good, noCache: true, wantErr: "no EROFS cache directory"},
		{asked: spec.RootAuto, k: good, size: 400 << 20, want: spec.RootErofs},
		{asked: spec.RootAuto, k: good, size: spec.ErofsAutoMaxImageBytes + 1, want: spec.RootVirtiofs},
		{asked: spec.RootAuto, k: bare, want: spec.RootVirtiofs},
		{asked: spec.RootAuto, k: good, noCache: true, want: spec.RootVirtiofs},
	} {
		o := DefaultOptions()
		o.ErofsDir = t.TempDir()
		if tc.noCache {
			o.ErofsDir = filepath.Join(o.ErofsDir, "missing")
		}
		sp := spec.New()
		sp.RootTransport, sp.ImageID, sp.ImageSize = tc.asked, id, tc.size
		s := &supervisor{o: o, sp: sp}
		got, err := s.chooseRoot(tc.k, spec.WarmMeta{})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err %v, want %q", tc.asked, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q (size %d, no cache %v): got %q %v, want %q", tc.asked, tc.size, tc.noCache, got, err, tc.want)
		}
	}
	// A restore runs with what the saved VM ran with.
	s := &supervisor{o: DefaultOptions(), sp: spec.Spec{Warm: spec.WarmRestore, RootTransport: spec.RootVirtiofs}}
	if got, _ := s.chooseRoot(bare, spec.WarmMeta{RootTransport: spec.RootErofs}); got != spec.RootErofs {
		t.Errorf("restore: %q", got)
	}
}
