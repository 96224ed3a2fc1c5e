package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/machine"
	"github.com/bcvk/bcvk/pkg/inner/proc"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
)

func warmFixture(t *testing.T, sp spec.Spec, script string) *fixture {
	t.Helper()
	sp.SSHAuthorizedKey = "ssh-ed25519 AAAA user"
	f := newFixture(t, sp, script, "")
	f.o.SSH = "true" // the guest takes every key
	if err := os.MkdirAll(f.o.WarmDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestWarmRestore(t *testing.T) {
	sp := testSpec()
	sp.Warm = spec.WarmRestore
	f := warmFixture(t, sp, "await-migration; event SHUTDOWN guest-shutdown; exit 0")
	if err := os.WriteFile(filepath.Join(f.o.WarmDir, spec.WarmInitramfsFile), []byte("i"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := (spec.WarmMeta{Accel: spec.AccelTCG, KernelVersion: "6.12.0", SMBIOSCredentials: []string{"io.systemd.credential.binary:x=eA=="}}).Write(f.o.WarmDir); err != nil {
		t.Fatal(err)
	}
	code, evs := f.run(t)
	if code != ExitPoweredOff || !hasPhase(evs, events.PhaseSSH, "warm start") || !hasPhase(evs, events.PhaseKernel, "restoring a saved VM") {
		t.Fatalf("exit %d %+v\n%s", code, evs, f.stderr)
	}
}

func TestWarmRestoreOfAnotherKernel(t *testing.T) {
	sp := testSpec()
	sp.Warm = spec.WarmRestore
	f := warmFixture(t, sp, "")
	if err := (spec.WarmMeta{Accel: spec.AccelTCG, KernelVersion: "6.1.0"}).Write(f.o.WarmDir); err != nil {
		t.Fatal(err)
	}
	code, evs := f.run(t)
	if code != ExitSetup || !hasPhase(evs, events.PhaseError, "the saved VM ran kernel 6.1.0, the image has 6.12.0") {
		t.Fatalf("exit %d %+v", code, evs)
	}
}

// The save writes the state, the initramfs and, last, the meta that marks
// the directory complete.
func TestWarmSave(t *testing.T) {
	sp := testSpec()
	sp.Warm, sp.SSHAuthorizedKey = spec.WarmSave, "ssh-ed25519 AAAA user"
	f := warmFixture(t, sp, "await-migration; hang")
	if err := os.WriteFile(filepath.Join(f.o.StateDir, spec.SSHKeyFile), []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	logrus.SetOutput(f.o.Stderr) // as Main does
	s := &supervisor{o: f.o, sp: sp, table: proc.NewTable(), ready: make(chan struct{}, 1)}
	defer s.table.Close()
	if _, err := s.openEvents(); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(f.o.RunDir, "initramfs.img")
	if err := os.WriteFile(initrd, []byte("initramfs"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := qemuConfig(f.o, sp, imageFacts{}, "/k", initrd)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Accel = spec.AccelTCG
	s.cfg, s.kernel.Version = cfg, "6.12.0"
	mc := machineConfig(f.o, sp, cfg)
	mc.Console = &syncBuffer{}
	m, err := machine.Start(t.Context(), s.table, mc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	s.saveWarm(t.Context(), m)
	meta, err := spec.ReadWarmMeta(f.o.WarmDir)
	if err != nil || meta.KernelVersion != "6.12.0" || meta.Accel != spec.AccelTCG || len(meta.SMBIOSCredentials) != 1 {
		t.Fatalf("%+v %v\n%s", meta, err, f.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(f.o.WarmDir, spec.WarmInitramfsFile)); string(b) != "initramfs" {
		t.Errorf("initramfs %q", b)
	}
	if _, err := os.Stat(filepath.Join(f.o.WarmDir, spec.WarmKeyFile)); err != nil {
		t.Errorf("no restore key: %v", err)
	}
	// A guest that refuses the restore key: no save, a warning.
	s.o.SSH = "false"
	if err := os.Remove(filepath.Join(f.o.WarmDir, "meta.json")); err != nil {
		t.Fatal(err)
	}
	s.saveWarm(t.Context(), m)
	if !strings.Contains(f.stderr.String(), "could not save the VM for warm starts: giving the guest the restore key") {
		t.Errorf("stderr:\n%s", f.stderr)
	}
}

func TestSetupFailures(t *testing.T) {
	t.Run("no image", func(t *testing.T) {
		f := newFixture(t, testSpec(), "", "")
		f.o.ImageRoot = filepath.Join(t.TempDir(), "none")
		code, evs := f.run(t)
		if code != ExitSetup || !hasPhase(evs, events.PhaseError, "no image is mounted at") {
			t.Fatalf("exit %d %+v", code, evs)
		}
	})
	t.Run("kvm asked, none usable", func(t *testing.T) {
		sp := testSpec()
		sp.Accel = spec.AccelKVM
		f := newFixture(t, sp, "", "")
		code, evs := f.run(t)
		if code != ExitSetup || !hasPhase(evs, events.PhaseError, "--accel kvm: /dev/kvm is not usable: no KVM in unit tests") {
			t.Fatalf("exit %d %+v", code, evs)
		}
	})
	t.Run("auto without KVM warns", func(t *testing.T) {
		sp := testSpec()
		sp.Accel = spec.AccelAuto
		f := newFixture(t, sp, "event SHUTDOWN guest-shutdown; exit 0", "")
		code, evs := f.run(t)
		if code != ExitPoweredOff || !hasPhase(evs, events.PhaseWarning, "KVM is not usable") {
			t.Fatalf("exit %d %+v", code, evs)
		}
	})
	t.Run("disks", func(t *testing.T) {
		sp := testSpec()
		sp.Disks = []spec.Disk{{File: "out.raw", Format: spec.FormatRaw, Serial: "output", CreateSize: 1 << 20},
			{File: "out.qcow2", Format: spec.FormatQCOW2, Serial: "q", CreateSize: 1 << 20}}
		f := newFixture(t, sp, "event SHUTDOWN guest-shutdown; exit 0", "")
		f.o.QEMUImg = "true"
		if err := os.MkdirAll(f.o.DisksDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if code, evs := f.run(t); code != ExitPoweredOff {
			t.Fatalf("exit %d %+v", code, evs)
		}
		if fi, err := os.Stat(filepath.Join(f.o.DisksDir, "out.raw")); err != nil || fi.Size() != 1<<20 {
			t.Fatalf("%v %v", fi, err)
		}
		// A disk that is there already is not ours to overwrite.
		if code, evs := f.run(t); code != ExitSetup || !hasPhase(evs, events.PhaseError, "creating the disk out.raw") {
			t.Fatalf("exit %d %+v", code, evs)
		}
	})
	t.Run("missing disk", func(t *testing.T) {
		sp := testSpec()
		sp.Disks = []spec.Disk{{File: "in.raw", Format: spec.FormatRaw, Serial: "in"}}
		f := newFixture(t, sp, "", "")
		if code, evs := f.run(t); code != ExitSetup || !hasPhase(evs, events.PhaseError, "is a host directory mounted at") {
			t.Fatalf("exit %d %+v", code, evs)
		}
	})
}

// A restore with shares: the saved VM has empty root ports and no share
// devices; each share's virtiofsd starts, its device is hot-plugged into a
// port, and the guest mounts it (the paths as arguments, not code) before
// SSH is reported ready.
func TestWarmRestoreWithShares(t *testing.T) {
	sp := testSpec()
	sp.Warm = spec.WarmRestore
	sp.Binds = []spec.Bind{{Host: "/h/rw", GuestPath: "/mnt/rw"}, {Host: "/h/ro", GuestPath: "/mnt/it's-ro", ReadOnly: true}}
	tmp := t.TempDir()
	log, loggedIn := filepath.Join(tmp, "log"), filepath.Join(tmp, "logged-in")
	// The guest powers off once bcvk-inner has logged in.
	f := warmFixture(t, sp, "await-migration; await-file "+loggedIn+"; event SHUTDOWN guest-shutdown; exit 0")
	t.Setenv(fakeLog, log)
	ssh := filepath.Join(tmp, "ssh")
	if err := os.WriteFile(ssh, []byte("#!/bin/sh\nfor a; do printf '[%s]' \"$a\"; done >>"+log+"\necho >>"+log+"\ntouch "+loggedIn+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.o.SSH = ssh
	if err := os.WriteFile(filepath.Join(f.o.WarmDir, spec.WarmInitramfsFile), []byte("i"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := (spec.WarmMeta{Accel: spec.AccelTCG, KernelVersion: "6.12.0", HotplugPorts: spec.WarmSharePorts}).Write(f.o.WarmDir); err != nil {
		t.Fatal(err)
	}
	code, evs := f.run(t)
	if code != ExitPoweredOff || !hasPhase(evs, events.PhaseSSH, "warm start") || !hasPhase(evs, events.PhaseBooting, "hot-plugged and mounted 2 shares") {
		t.Fatalf("exit %d %+v\n%s", code, evs, f.stderr)
	}
	b, _ := os.ReadFile(log)
	got := string(b)
	for _, want := range []string{
		"-device pcie-root-port,id=hp0,chassis=1,bus=pcie.0,addr=0x1c.0,multifunction=on -device pcie-root-port,id=hp1,",
		`qmp chardev-add {"backend":{"data":{"addr":{"data":{"path":"` + filepath.Join(f.o.RunDir, "share0.sock") + `"},"type":"unix"},"server":false},"type":"socket"},"id":"bind0"}`,
		`qmp device_add {"bus":"hp0","chardev":"bind0","driver":"vhost-user-fs-pci","id":"dev-bind0","queue-size":1024,"tag":"bind0"}`,
		`qmp device_add {"bus":"hp1","chardev":"bind1","driver":"vhost-user-fs-pci","id":"dev-bind1","queue-size":1024,"tag":"bind1"}`,
		// ssh sends one command line: the paths go quoted, as words.
		`' sh 300 bind0 /mnt/rw rw bind1 '/mnt/it'\''s-ro' ro]`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "vhost-user-fs-pci,queue-size=1024,chardev=bind") {
		t.Errorf("a share on the restoring QEMU's command line:\n%s", got)
	}
}

// A saved VM with fewer ports than shares is refused before QEMU starts.
func TestWarmRestoreTooManyShares(t *testing.T) {
	sp := testSpec()
	sp.Warm = spec.WarmRestore
	sp.Binds = []spec.Bind{{Host: "/h/rw", GuestPath: "/mnt/rw"}}
	f := warmFixture(t, sp, "")
	if err := (spec.WarmMeta{Accel: spec.AccelTCG, KernelVersion: "6.12.0"}).Write(f.o.WarmDir); err != nil {
		t.Fatal(err)
	}
	code, evs := f.run(t)
	if code != ExitSetup || !hasPhase(evs, events.PhaseError, "the saved VM has room for 0 shares, not 1") {
		t.Fatalf("exit %d %+v", code, evs)
	}
}
