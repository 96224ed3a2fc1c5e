package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/spec"
)

// The printed lines are the ones the supervisor starts: the same builders.
func TestWriteCommandLines(t *testing.T) {
	f := newFixture(t, testSpec(), "", "")
	key := filepath.Join(t.TempDir(), "k.pub")
	if err := os.WriteFile(key, []byte("ssh-ed25519 AAAA test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	err := WriteCommandLines([]string{"--memory", "1G", "--vcpus", "3", "--name", "b1", "--karg", "quiet",
		"--image-root", f.o.ImageRoot, "--run-dir", "/run/x", "--ssh-key", key}, f.o, &out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "virtiofsd\t/run/x/virtiofs.sock\t"+f.o.Virtiofsd+"\t--socket-path=/run/x/virtiofs.sock\t") ||
		!strings.HasPrefix(lines[1], "qemu\t/run/x/qmp.sock\t"+f.o.QEMU+"\t-name\tbcvk-b1,debug-threads=on\t") {
		t.Fatalf("lines:\n%s", out.String())
	}
	for _, want := range []string{"\t-accel\ttcg,tb-size=256\t", "\t-smp\t3\t", "\t-m\t1024M\t", "\t-initrd\t/run/x/initramfs.img\t",
		"\tconsole=ttyS0,115200n8 selinux=0 panic=-1 no_timer_check quiet\t", "io.systemd.credential.binary:tmpfiles.extra="} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("QEMU line lacks %q", want)
		}
	}
	if err := WriteCommandLines([]string{"--karg", "a\tb", "--image-root", f.o.ImageRoot}, f.o, &out); err == nil {
		t.Error("a tab in an argument was printed")
	}
	if err := WriteCommandLines([]string{"--image-root", t.TempDir()}, f.o, &out); err == nil {
		t.Error("no kernel, no error")
	}
}

// Started by hand, the runner takes flags and attaches the console.
func TestLoadSpecFromFlags(t *testing.T) {
	o := DefaultOptions()
	o.StateDir, o.Stderr = t.TempDir(), &syncBuffer{}
	sp, err := loadSpec(o, []string{"--memory", "4G", "--vcpus", "2", "--accel", "kvm", "--karg", "quiet"})
	if err != nil || sp.MemoryMiB != 4096 || sp.Accel != spec.AccelKVM || !sp.Console || len(sp.KernelArgs) != 1 {
		t.Fatalf("%+v %v", sp, err)
	}
	if _, err := loadSpec(o, []string{"--memory", "lots"}); err == nil {
		t.Error("bad memory accepted")
	}
	if _, err := loadSpec(o, []string{"--accel", "xen"}); err == nil {
		t.Error("bad accelerator accepted")
	}
}
