package hostcheck

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
