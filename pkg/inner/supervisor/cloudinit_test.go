package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/qemu"
	"github.com/bcvk/bcvk/pkg/spec"
)

func TestQEMUConfigCloudInit(t *testing.T) {
	o := DefaultOptions()
	sp := testSpec()
	sp.Disks = []spec.Disk{{File: "out.raw", Format: spec.FormatRaw, Serial: "output"}}
	sp.CloudInit = &spec.CloudInit{UserData: []byte("#cloud-config\n")}
	cfg, err := qemuConfig(o, sp, imageFacts{}, "/k", "/i")
	if err != nil {
		t.Fatal(err)
	}
	want := []qemu.Drive{
		{Path: "/bcvk/disks/out.raw", Format: "raw", Serial: "output"},
		{Path: "/run/bcvk/cidata.img", Format: "raw", Serial: "cidata", ReadOnly: true},
	}
	if len(cfg.Drives) != 2 || cfg.Drives[0] != want[0] || cfg.Drives[1] != want[1] {
		t.Fatalf("drives %+v, want %+v", cfg.Drives, want)
	}
	sp.CloudInit = nil
	if cfg, _ := qemuConfig(o, sp, imageFacts{}, "/k", "/i"); len(cfg.Drives) != 1 {
		t.Fatalf("no seed, drives %+v", cfg.Drives)
	}
}

func TestHasCloudInit(t *testing.T) {
	root := t.TempDir()
	if hasCloudInit(root) {
		t.Fatal("an empty image has cloud-init")
	}
	// A symlink that points out of the image is resolved inside it.
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "cloud-init")
	if err := os.WriteFile(outside, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "usr/bin/cloud-init")); err != nil {
		t.Fatal(err)
	}
	if hasCloudInit(root) {
		t.Fatal("a symlink out of the image counted")
	}
	if err := os.Remove(filepath.Join(root, "usr/bin/cloud-init")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/cloud-init"), []byte("#!/usr/bin/python3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !hasCloudInit(root) {
		t.Fatal("cloud-init not found")
	}
}

// fakeTools puts mkfs.vfat and mcopy stand-ins first on PATH: mkfs.vfat
// creates its output file, mcopy records its arguments in log.
func fakeTools(t *testing.T) (log string) {
	t.Helper()
	bin := t.TempDir()
	log = filepath.Join(bin, "mcopy.log")
	scripts := map[string]string{
		"mkfs.vfat": "#!/bin/sh\nfor a; do out=$prev; prev=$a; done\n: >\"$out\"\n",
		"mcopy":     "#!/bin/sh\necho \"$@\" >>" + log + "\n",
	}
	for name, s := range scripts {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	return log
}

// The seed disk is made before QEMU starts; an image without cloud-init
// gets a warning, and boots all the same.
func TestCloudInitSeedDisk(t *testing.T) {
	for _, withCloudInit := range []bool{false, true} {
		t.Run(map[bool]string{false: "image without cloud-init", true: "image with cloud-init"}[withCloudInit], func(t *testing.T) {
			log := fakeTools(t)
			sp := testSpec()
			sp.CloudInit = &spec.CloudInit{UserData: []byte("#cloud-config\n"), NetworkConfig: []byte("version: 2\n")}
			f := newFixture(t, sp, handover+"; event SHUTDOWN guest-shutdown; exit 0", "")
			if withCloudInit {
				if err := os.MkdirAll(filepath.Join(f.o.ImageRoot, "usr/bin"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(f.o.ImageRoot, "usr/bin/cloud-init"), nil, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			code, evs := f.run(t)
			if code != ExitPoweredOff {
				t.Fatalf("exit %d\n%s", code, f.stderr)
			}
			warned := hasPhase(evs, events.PhaseWarning, "the image has no cloud-init")
			if warned == withCloudInit {
				t.Fatalf("warning %v with cloud-init %v: %+v", warned, withCloudInit, evs)
			}
			img := filepath.Join(f.o.RunDir, "cidata.img")
			if _, err := os.Stat(img); err != nil {
				t.Fatal(err)
			}
			src := filepath.Join(f.o.RunDir, "cidata")
			b, err := os.ReadFile(log)
			want := "-i " + img + " " + src + "/user-data " + src + "/meta-data " + src + "/network-config ::\n"
			if err != nil || string(b) != want {
				t.Fatalf("mcopy ran with %q (%v), want %q", b, err, want)
			}
			if b, _ := os.ReadFile(filepath.Join(src, "meta-data")); string(b) != "instance-id: bcvk-t\n" {
				t.Fatalf("meta-data %q", b)
			}
		})
	}
}

func TestCloudInitSeedDiskFails(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "mkfs.vfat"), []byte("#!/bin/sh\necho no space left >&2; exit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	sp := testSpec()
	sp.CloudInit = &spec.CloudInit{UserData: []byte("#cloud-config\n")}
	f := newFixture(t, sp, handover+"; event SHUTDOWN guest-shutdown; exit 0", "")
	code, evs := f.run(t)
	if code != ExitSetup || !hasPhase(evs, events.PhaseError, "making the cloud-init seed disk") || !hasPhase(evs, events.PhaseError, "no space left") {
		t.Fatalf("exit %d %+v\n%s", code, evs, f.stderr)
	}
	if !strings.Contains(f.stderr.String(), "mkfs.vfat") {
		t.Fatalf("stderr does not name mkfs.vfat:\n%s", f.stderr)
	}
}
