package cidata

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/spec"
)

func TestMkfsArgs(t *testing.T) {
	got := MkfsArgs("/run/bcvk/cidata.img", 512)
	want := []string{"-n", "CIDATA", "-i", "c1da7a00", "-C", "/run/bcvk/cidata.img", "512"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestMcopyArgs(t *testing.T) {
	got := McopyArgs("/run/bcvk/cidata.img", []string{"/run/bcvk/cidata/user-data", "/run/bcvk/cidata/meta-data"})
	want := []string{"-i", "/run/bcvk/cidata.img", "/run/bcvk/cidata/user-data", "/run/bcvk/cidata/meta-data", "::"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestSizeKiB(t *testing.T) {
	for _, tc := range []struct {
		total int64
		want  int
	}{
		{0, 512},
		{1, 576}, // 514 KiB, rounded up to 64 KiB
		{100 << 10, 768},
		{spec.MaxCloudInitSeed, 2560},
	} {
		if got := SizeKiB(tc.total); got != tc.want {
			t.Errorf("SizeKiB(%d) = %d, want %d", tc.total, got, tc.want)
		}
	}
}

func TestFiles(t *testing.T) {
	names := func(fs []File) []string {
		var n []string
		for _, f := range fs {
			n = append(n, f.Name+"="+string(f.Data))
		}
		return n
	}
	for _, tc := range []struct {
		name string
		seed spec.CloudInit
		vm   string
		want []string
	}{
		{"meta-data generated", spec.CloudInit{UserData: []byte("#cloud-config\n")}, "web",
			[]string{"user-data=#cloud-config\n", "meta-data=instance-id: bcvk-web\n"}},
		{"meta-data kept", spec.CloudInit{UserData: []byte("u"), MetaData: []byte("instance-id: x\n")}, "web",
			[]string{"user-data=u", "meta-data=instance-id: x\n"}},
		{"network-config", spec.CloudInit{UserData: []byte("u"), MetaData: []byte("m"), NetworkConfig: []byte("n")}, "web",
			[]string{"user-data=u", "meta-data=m", "network-config=n"}},
		{"no name", spec.CloudInit{}, "", []string{"user-data=", "meta-data=instance-id: bcvk-vm\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(Files(&tc.seed, tc.vm)); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestBuild checks what Build runs, with a fake runner.
func TestBuild(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "cidata.img")
	if err := os.WriteFile(out, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ran [][]string
	run := func(_ context.Context, argv []string) error {
		if _, err := os.Stat(out); argv[0] == MkfsBinary && err == nil {
			return errors.New("mkfs.vfat: the output file exists")
		}
		ran = append(ran, argv)
		return nil
	}
	src := filepath.Join(dir, "seed")
	files := []File{{"user-data", []byte("#cloud-config\n")}, {"meta-data", []byte("instance-id: a\n")}}
	if err := Build(context.Background(), run, files, src, out); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"mkfs.vfat", "-n", "CIDATA", "-i", "c1da7a00", "-C", out, "576"},
		{"mcopy", "-i", out, filepath.Join(src, "user-data"), filepath.Join(src, "meta-data"), "::"},
	}
	if !reflect.DeepEqual(ran, want) {
		t.Fatalf("ran %q\nwant %q", ran, want)
	}
	if b, err := os.ReadFile(filepath.Join(src, "meta-data")); err != nil || string(b) != "instance-id: a\n" {
		t.Fatalf("meta-data: %q, %v", b, err)
	}
	failing := func(context.Context, []string) error { return errors.New("exit status 1") }
	if err := Build(context.Background(), failing, files, src, out); err == nil || !strings.Contains(err.Error(), "cloud-init seed disk") {
		t.Fatalf("a failing mkfs.vfat: %v", err)
	}
}

// TestBuildReal makes a real image where dosfstools and mtools are
// installed (the runner image has them) and reads the label and files back.
func TestBuildReal(t *testing.T) {
	for _, p := range []string{MkfsBinary, McopyBinary, "mdir", "mlabel", "mtype"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s is not installed", p)
		}
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "cidata.img")
	run := func(ctx context.Context, argv []string) error {
		b, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return errors.New(string(b))
		}
		return nil
	}
	big := strings.Repeat("#", spec.MaxCloudInitSeed-100)
	files := []File{{"user-data", []byte(big)}, {"meta-data", []byte("instance-id: a\n")}, {"network-config", []byte("version: 2\n")}}
	if err := Build(context.Background(), run, files, filepath.Join(dir, "seed"), out); err != nil {
		t.Fatal(err)
	}
	label, err := exec.Command("mlabel", "-i", out, "-s", "::").CombinedOutput()
	if err != nil || !strings.Contains(string(label), "CIDATA") {
		t.Fatalf("label: %s %v", label, err)
	}
	for _, f := range files {
		b, err := exec.Command("mtype", "-i", out, "::"+f.Name).Output()
		if err != nil || string(b) != string(f.Data) {
			t.Fatalf("%s: %d bytes back, %v", f.Name, len(b), err)
		}
	}
}
