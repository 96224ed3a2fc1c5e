package todisk

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestFormatFor(t *testing.T) {
	for _, c := range []struct{ disk, flag, want string }{
		{"a.raw", "", "raw"}, {"a.img", "", "raw"}, {"a.qcow2", "", "qcow2"}, {"A.QCOW2", "", "qcow2"},
		{"a.vmdk", "", "vmdk"}, {"a.vhdx", "", "vhdx"}, {"a.vhd", "", "vpc"}, {"disk", "", "raw"},
		{"a.qcow2", "raw", "raw"}, {"a", "vpc", "vpc"},
	} {
		got, err := FormatFor(c.disk, c.flag)
		if err != nil || got != c.want {
			t.Errorf("FormatFor(%q, %q) = %q, %v; want %q", c.disk, c.flag, got, err, c.want)
		}
	}
	if _, err := FormatFor("a.raw", "vdi"); err == nil || !strings.Contains(err.Error(), "raw, qcow2, vmdk, vhdx, vpc") {
		t.Fatalf("unknown format: %v", err)
	}
}

func TestInstallArgs(t *testing.T) {
	id := strings.Repeat("ab", 32)
	got := InstallArgs(Install{Source: "sha256:" + id, Target: "quay.io/x/y:1", Filesystem: "xfs", RootSize: "3G", KernelArgs: []string{"a=1", "quiet"}})
	want := []string{"bootc", "install", "to-disk", "--generic-image", "--skip-fetch-check",
		"--source-imgref", "containers-storage:" + id, "--target-imgref", "quay.io/x/y:1",
		"--filesystem", "xfs", "--root-size", "3G", "--karg", "a=1", "--karg", "quiet",
		"/dev/disk/by-id/virtio-output"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	if got := InstallArgs(Install{}); len(got) != 6 {
		t.Fatalf("defaults: %q", got)
	}
	for ref, want := range map[string]string{"localhost/a:1": "localhost/a:1", id: "", "sha256:" + id: "", id[:12]: ""} {
		if got := targetFor(ref); got != want {
			t.Errorf("targetFor(%s) = %q, want %q", ref, got, want)
		}
	}
}

func TestInstallValidate(t *testing.T) {
	for _, in := range []Install{{Filesystem: "ext4; rm"}, {Filesystem: "EXT4"}, {RootSize: "lots"}, {KernelArgs: []string{"a b"}}} {
		if err := in.Validate(); err == nil {
			t.Errorf("%+v accepted", in)
		}
	}
	if err := (Install{Filesystem: "nosuchfs", RootSize: "2G", KernelArgs: []string{"x=y"}}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConvertPodmanArgs(t *testing.T) {
	got := ConvertPodmanArgs(ConvertConfig{Name: "n", RunnerImage: "r:1", Version: "0.1", Dir: "/d/.x", From: "disk.qcow2", To: "disk.vpc", Format: "vpc"})
	want := []string{"run", "--rm", "--name", "n", "--label", "bcvk.to-disk=1", "--label", "bcvk.version=0.1",
		"--pull=never", "--mount", "type=bind,source=/d/.x,destination=/bcvk/disks",
		"--security-opt", "label=disable", "--network", "none", "--entrypoint", "qemu-img", "r:1",
		"convert", "-f", "qcow2", "-O", "vpc", "-o", "subformat=fixed,force_size=on",
		"/bcvk/disks/disk.qcow2", "/bcvk/disks/disk.vpc"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestDefaultSize(t *testing.T) {
	if got := DefaultSize(300 << 20); got != 4<<30 {
		t.Fatalf("small image: %d", got)
	}
	if got := DefaultSize(3<<30 + 1); got != 6<<30+1<<20 {
		t.Fatalf("large image: %d", got)
	}
}

func TestDecide(t *testing.T) {
	dir := t.TempDir()
	key := Key{Version: 1, ImageDigest: "sha256:a", ImageRef: "img", Format: "raw", DiskSize: 4 << 30, KernelArgs: []string{}}
	p := filepath.Join(dir, "d.raw")
	if v, err := Decide(p, key); err != nil || v.Decision != Build {
		t.Fatalf("missing file: %+v %v", v, err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	setKey(t, p, key)
	if v, _ := Decide(p, key); v.Decision != Reuse {
		t.Fatalf("same key: %+v", v)
	}
	k2 := key
	k2.DiskSize, k2.Format = 5<<30, "qcow2"
	if v, _ := Decide(p, k2); v.Decision != Regenerate || v.Why != "changed: format, disk size" {
		t.Fatalf("other size: %+v", v)
	}
	other := filepath.Join(dir, "foreign.raw")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if v, _ := Decide(other, key); v.Decision != Foreign {
		t.Fatalf("foreign: %+v", v)
	}
	if _, err := Decide(dir, key); err == nil {
		t.Fatal("a directory accepted as disk")
	}
}

// setKey records key on the file at path as finish does, or skips the test
// where the file system keeps no user xattrs.
func setKey(t *testing.T, path string, key Key) {
	t.Helper()
	if err := unix.Setxattr(path, XattrName, key.encode(), 0); errors.Is(err, unix.ENOTSUP) {
		t.Skipf("%s has no user xattrs", filepath.Dir(path))
	} else if err != nil {
		t.Fatal(err)
	}
}

func FuzzInstallOptions(f *testing.F) {
	f.Add("ext4", "3G", "quiet", "disk.qcow2", "")
	f.Add("nosuchfs", "x", "a b", "d.VHD", "vdi")
	f.Fuzz(func(t *testing.T, fs, rootSize, karg, disk, format string) {
		in := Install{Filesystem: fs, RootSize: rootSize, KernelArgs: []string{karg}}
		if in.Validate() == nil {
			for _, a := range InstallArgs(in) {
				if a == "" || strings.ContainsAny(a, " \t\n\x00") {
					t.Fatalf("install argument %q from %+v", a, in)
				}
			}
		}
		if got, err := FormatFor(disk, format); err == nil {
			ok := false
			for _, f := range Formats {
				ok = ok || f == got
			}
			if !ok {
				t.Fatalf("format %q", got)
			}
		}
	})
}

func TestCheckSize(t *testing.T) {
	if err := checkSize(1<<30, 900<<20, "img"); err == nil || !strings.Contains(err.Error(), "--disk-size 1.0 GiB is too small for img (900 MiB): give at least 1.3 GiB") {
		t.Fatalf("got %v", err)
	}
	if err := checkSize(4<<30, 900<<20, "img"); err != nil {
		t.Fatal(err)
	}
}
