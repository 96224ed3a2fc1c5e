package supervisor

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/console"
	"github.com/bcvk/bcvk/pkg/inner/guest"
	"github.com/bcvk/bcvk/pkg/inner/kernel"
	"github.com/bcvk/bcvk/pkg/inner/machine"
	"github.com/bcvk/bcvk/pkg/inner/proc"
	"github.com/bcvk/bcvk/pkg/inner/qemu"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// prepare finds the kernel, builds the initramfs while the root's virtiofsd
// starts, and boots the machine (with the KVM watch and fallback).
func (s *supervisor) prepare(ctx context.Context, logDir string) (*machine.Machine, error) {
	k, err := kernel.Find(s.o.ImageRoot)
	if err != nil {
		if _, statErr := os.Stat(s.o.ImageRoot); statErr != nil {
			err = fmt.Errorf("no image is mounted at %s: start the runner with --mount=type=image,source=IMAGE,destination=%s", s.o.ImageRoot, spec.ImageRoot)
		}
		return nil, err
	}
	s.kernel = k
	if s.sp.Warm != "" {
		// A saved VM has no shares: one saved VM serves any. They are
		// hot-plugged after the save or the restore (see hotplug.go).
		s.warmBinds, s.sp.Binds = s.sp.Binds, nil
		// Published ports likewise: added to the running VM's network.
		s.warmPublish, s.sp.Publish = s.sp.Publish, nil
	}
	initrd := filepath.Join(s.o.RunDir, "initramfs.img")
	var warm spec.WarmMeta
	if s.sp.Warm == spec.WarmRestore {
		// The saved VM booted with this initramfs: QEMU's line must match.
		initrd = filepath.Join(s.o.WarmDir, spec.WarmInitramfsFile)
	}
	img, err := readImage(s.o.ImageRoot, s.sp)
	if err != nil {
		return nil, err
	}
	for _, d := range img.describe(s.sp) {
		logrus.Debug(d)
		s.ev.Emit(events.PhaseInfo, d)
	}
	if img.noCloudInit {
		msg := fmt.Sprintf("the image has no cloud-init (no %s): the --cloud-init seed is attached, but nothing in the guest will read it", cloudInitPaths[0])
		logrus.Warn(msg)
		s.ev.Warn("", msg)
	}
	cfg, err := qemuConfig(s.o, s.sp, img, k.Image, initrd)
	if err != nil {
		return nil, err
	}
	if s.sp.Warm == spec.WarmRestore {
		if warm, err = spec.ReadWarmMeta(s.o.WarmDir); err != nil {
			return nil, fmt.Errorf("reading the saved VM: %w", err)
		}
		if warm.KernelVersion != k.Version {
			return nil, fmt.Errorf("the saved VM ran kernel %s, the image has %s", warm.KernelVersion, k.Version)
		}
		if len(s.warmBinds) > warm.HotplugPorts {
			return nil, fmt.Errorf("the saved VM has room for %d shares, not %d", warm.HotplugPorts, len(s.warmBinds))
		}
		cfg.HotplugPorts = warm.HotplugPorts
	} else if s.sp.Warm == spec.WarmSave {
		cfg.HotplugPorts = spec.WarmSharePorts
	}
	if err := s.planTransport(ctx, &cfg, k, warm.SSHTransport); err != nil {
		return nil, err
	}
	if s.root, err = s.chooseRoot(k, warm); err != nil {
		return nil, err
	}
	var vp *proc.Proc
	if s.root == spec.RootErofs {
		if cfg.RootDisk, err = s.prepareErofsRoot(ctx); err != nil {
			return nil, err
		}
		cfg.RootDiskSerial = spec.ErofsSerial
	} else {
		// virtiofsd comes up while the initramfs is built; until a machine
		// owns it, it is ours to stop.
		if vp, err = machine.StartHelper(s.table, machineConfig(s.o, s.sp, cfg).Helpers[0], s.o.Stderr); err != nil {
			return nil, err
		}
	}
	defer func() {
		if vp != nil {
			vp.Signal(unix.SIGKILL)
		}
	}()
	if s.sp.Warm != spec.WarmRestore {
		if err := buildInitramfs(ctx, s.table, s.sp, k, cfg.RootDiskSerial, s.tp.reportPort, initrd); err != nil {
			return nil, err
		}
	}
	if err := s.prepareDisks(ctx); err != nil {
		return nil, err
	}
	if err := s.prepareCloudInit(ctx); err != nil {
		return nil, err
	}
	accel, watch, err := s.chooseAccel()
	if err != nil {
		return nil, err
	}
	if s.sp.Warm == spec.WarmRestore {
		accel, watch = warm.Accel, false
		cfg.SMBIOSCredentials = warm.SMBIOSCredentials
		cfg.Incoming = true
	}
	consoleLog, err := console.OpenLog(filepath.Join(logDir, spec.ConsoleFile), console.DefaultLogMax)
	if err != nil {
		return nil, err
	}
	s.consoleLog, s.consoleOut = consoleLog, consoleLog
	if s.sp.Console {
		s.consoleOut = io.MultiWriter(consoleLog, s.o.Stdout)
	}
	cfg.Accel = accel
	early := vp
	vp = nil // the machine owns it now, on every path
	m, err := s.boot(ctx, cfg, early)
	if err != nil || !watch {
		return m, err
	}
	if ok, why, broken := s.watchKVM(ctx, m); !ok {
		s.kvmFallback(why, broken)
		m.Kill()
		cfg.Accel = spec.AccelTCG
		return s.boot(ctx, cfg, nil)
	}
	return m, nil
}

// boot starts one machine for cfg. Each start is a kernel event: the host
// shows the step (again, after a KVM fallback or a restart), with the
// accelerator really used. A later start begins a fresh console log, guest
// state and virtiofsd.
func (s *supervisor) boot(ctx context.Context, cfg qemu.Config, early *proc.Proc) (*machine.Machine, error) {
	if early == nil {
		_ = s.consoleLog.Reset()
	}
	s.state = guest.State{}
	what := "kernel"
	if s.sp.Warm == spec.WarmRestore {
		what = "restoring a saved VM: kernel"
	}
	s.ev.Emit(events.PhaseKernel, fmt.Sprintf("%s %s, %s, %d MiB, %d vCPUs", what, s.kernel.Version, cfg.Accel, s.sp.MemoryMiB, s.sp.VCPUs))
	mc := machineConfig(s.o, s.sp, cfg)
	if s.tp.helper != nil {
		mc.Helpers = append(mc.Helpers, *s.tp.helper)
	}
	if s.tp.vhost != nil {
		mc.QEMUFiles = []*os.File{s.tp.vhost}
	}
	mc.Console = s.consoleOut
	if s.sp.Console {
		if f, ok := s.o.Stdin.(*os.File); ok {
			mc.Stdin = f
		}
	}
	logrus.Debugf("qemu: %q", mc.QEMU)
	s.cfg = cfg
	s.sshReady.Store(false)
	s.handoverReported.Store(false)
	m, err := machine.Start(ctx, s.table, mc, early)
	if err == nil {
		reclaim, closeShell := s.reclaimFunc()
		go func() {
			defer closeShell()
			s.watchFDs(ctx, m, s.o.Timing.FDWatch, reclaim)
		}()
	}
	return m, err
}

// afterBoot restores a warm VM or starts the SSH probe; it returns the
// probe's stop.
func (s *supervisor) afterBoot(ctx context.Context, m *machine.Machine) (func(), error) {
	switch {
	case s.sp.Warm == spec.WarmRestore:
		if err := s.restoreWarm(ctx, m); err != nil {
			return func() {}, fmt.Errorf("restoring the saved VM: %w", err)
		}
	case s.sp.SSHAuthorizedKey != "":
		return s.startProbe(ctx, m), nil
	}
	return func() {}, nil
}
