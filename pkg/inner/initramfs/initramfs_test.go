package initramfs

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/inner/guestinit"
)

func modTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"modules.dep": "kernel/fs/fuse/virtiofs.ko.xz: kernel/fs/fuse/fuse.ko kernel/drivers/virtio/virtio_ring.ko\n" +
			"kernel/fs/fuse/fuse.ko:\nkernel/fs/overlayfs/overlay.ko:\nkernel/drivers/virtio/virtio_ring.ko:\n",
		"modules.builtin":                      "kernel/drivers/virtio/virtio_pci.ko\n",
		"kernel/fs/fuse/virtiofs.ko.xz":        "VIRTIOFS-XZ",
		"kernel/fs/fuse/fuse.ko":               "FUSE",
		"kernel/fs/overlayfs/overlay.ko":       "OVERLAY",
		"kernel/drivers/virtio/virtio_ring.ko": "RING",
	}
	for rel, data := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestResolveModules(t *testing.T) {
	res, err := ResolveModules(modTree(t), "/", append(RootModules, "nosuch"))
	if err != nil {
		t.Fatal(err)
	}
	// In the order wanted, each after its dependencies, each once.
	want := []string{"kernel/fs/fuse/fuse.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/fs/fuse/virtiofs.ko.xz", "kernel/fs/overlayfs/overlay.ko"}
	if !reflect.DeepEqual(res.Files, want) {
		t.Fatalf("files %q, want %q", res.Files, want)
	}
	if !reflect.DeepEqual(res.Builtin, []string{"virtio_pci"}) || !reflect.DeepEqual(res.Missing, []string{"nosuch"}) {
		t.Fatalf("builtin %q missing %q", res.Builtin, res.Missing)
	}
}

func TestBuildIsAValidCPIO(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio not installed")
	}
	initBin := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(initBin, []byte("#!init"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	cfg, err := Build(&buf, Options{
		InitBinary: initBin, ImageMount: modTree(t), ModulesDir: "/", RootTag: "rootfs",
		Decompress: func(argv []string, in *os.File, out io.Writer) error {
			_, err := out.Write([]byte("PLAIN"))
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Fatalf("archive length %d is not 4-byte aligned", buf.Len())
	}
	out := t.TempDir()
	cmd := exec.Command(cpio, "-idm", "--quiet")
	cmd.Dir = out
	cmd.Stdin = &buf
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v: %s", err, b)
	}
	var names []string
	_ = filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
		if p != out {
			names = append(names, strings.TrimPrefix(p, out+"/"))
		}
		return nil
	})
	sort.Strings(names)
	want := []string{"bcvk-init.json", "dev", "init", "lower", "modules", "modules/fuse.ko", "modules/overlay.ko",
		"modules/virtio_ring.ko", "modules/virtiofs.ko", "overlay", "proc", "sys", "sysroot"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("archive holds %q, want %q", names, want)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "modules/virtiofs.ko")); string(b) != "PLAIN" {
		t.Fatalf("compressed module not decompressed: %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(out, "init")); fi.Mode().Perm() != 0o755 {
		t.Fatalf("init mode %v", fi.Mode())
	}
	var got guestinit.Config
	b, _ := os.ReadFile(filepath.Join(out, "bcvk-init.json"))
	if err := json.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got, cfg) {
		t.Fatalf("config %+v, want %+v (%v)", got, cfg, err)
	}
	if cfg.Modules[1] != "/modules/virtio_ring.ko" || cfg.RootTag != "rootfs" {
		t.Fatalf("config %+v", cfg)
	}
}

func TestBuildErofsRootAddsItsModules(t *testing.T) {
	initBin := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(initBin, []byte("#!init"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	cfg, err := Build(&buf, Options{
		InitBinary: initBin, ImageMount: modTree(t), ModulesDir: "/", RootTag: "rootfs", RootDiskSerial: "bcvk-root",
		Decompress: func(argv []string, in *os.File, out io.Writer) error {
			_, err := out.Write([]byte("PLAIN"))
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootDiskSerial != "bcvk-root" {
		t.Fatalf("serial %q", cfg.RootDiskSerial)
	}
	// The test tree has neither: the guest init reports them by name.
	if !reflect.DeepEqual(cfg.MissingModules, []string{"virtio_blk", "crc32c_generic", "erofs"}) {
		t.Fatalf("missing %q", cfg.MissingModules)
	}
	var plain bytes.Buffer
	if _, err := Build(&plain, Options{InitBinary: initBin, ImageMount: modTree(t), ModulesDir: "/", RootTag: "rootfs",
		Decompress: func([]string, *os.File, io.Writer) error { return nil }}); err != nil {
		t.Fatal(err)
	}
}
