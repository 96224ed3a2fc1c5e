// Package supervisor is bcvk-inner's main job as PID 1 of the runner
// container: find the kernel, start the machine, follow the boot, report
// readiness, stop the guest on request and exit with a status that says how
// the VM ended.
package supervisor

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/console"
	"github.com/bcvk/bcvk/pkg/inner/guest"
	"github.com/bcvk/bcvk/pkg/inner/kernel"
	"github.com/bcvk/bcvk/pkg/inner/machine"
	"github.com/bcvk/bcvk/pkg/inner/proc"
	"github.com/bcvk/bcvk/pkg/inner/qemu"
	"github.com/bcvk/bcvk/pkg/inner/virtiofsd"
	"github.com/bcvk/bcvk/pkg/inner/vsock"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Exit statuses of bcvk-inner (and so of the container).
const (
	ExitPoweredOff = 0 // the guest powered off, or was shut down on request
	ExitSetup      = 1 // the VM could not be started: bad spec, no kernel, ...
	ExitQEMU       = 2 // QEMU failed or crashed
	ExitGuestBoot  = 3 // the guest could not mount its root or find its init
	ExitKilled     = 4 // the guest did not power off in time and was killed
	ExitPanic      = 5 // the guest kernel panicked
	ExitHelper     = 6 // virtiofsd died, so the VM was stopped
)

const (
	maxRestarts = 2 // boots after an early crash or a dead vsock device (see run)
	rootTag     = "rootfs"
)

// Options are the paths and programs; tests and direct runs may change them.
type Options struct {
	ImageRoot string
	StateDir  string
	RunDir    string
	DisksDir  string
	WarmDir   string
	ErofsDir  string
	// JournalMount is where the user's --journal file is mounted.
	JournalMount string
	QEMU         string
	QEMUImg      string
	Virtiofsd    string
	SSH          string
	KVMDevice    string
	// VhostVsockDevice is the kernel's vsock device, used when present;
	// VhostDeviceVsock the userspace backend used otherwise.
	VhostVsockDevice string
	VhostDeviceVsock string
	// KVMUsable checks KVMDevice (qemu.KVMUsable).
	KVMUsable func(dev string) error
	Stdin     io.Reader
	Stdout    io.Writer
	Stderr    io.Writer
	// Timing may be shortened by tests.
	Timing Timing
}

// DefaultOptions are the runner image's.
func DefaultOptions() Options {
	return Options{
		ImageRoot: spec.ImageRoot, StateDir: spec.StateDir, RunDir: spec.RunDir,
		DisksDir: spec.DisksDir, WarmDir: spec.WarmDir, ErofsDir: spec.ErofsDir, JournalMount: spec.JournalMount, QEMU: qemu.DefaultBinary, QEMUImg: "qemu-img",
		Virtiofsd: virtiofsd.DefaultBinary, SSH: "ssh", KVMDevice: "/dev/kvm", KVMUsable: qemu.KVMUsable,
		VhostVsockDevice: vsock.DefaultVhostPath, VhostDeviceVsock: vsock.BackendBinary,
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Timing: DefaultTiming(),
	}
}

// Main runs the supervisor and returns the exit status.
func Main(args []string, o Options) int {
	logrus.SetOutput(o.Stderr)
	logrus.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	s := &supervisor{o: o, table: proc.NewTable(), ready: make(chan struct{}, 1)}
	defer s.table.Close()
	code, err := s.run(context.Background(), args)
	if err != nil {
		logrus.Errorf("%v", err)
		s.ev.Emit(events.PhaseError, err.Error())
	}
	logrus.Infof("the VM ended (status %d): %s", code, s.endReason)
	s.ev.Exited(code, s.endReason)
	if s.eventsFile != nil {
		s.eventsFile.Close()
	}
	return code
}

type supervisor struct {
	o          Options
	sp         spec.Spec
	table      *proc.Table
	ev         *events.Writer
	eventsFile *os.File
	endReason  string
	// state is the guest's, owned by the goroutine that runs run.
	state guest.State
	ready chan struct{} // the SSH probe saw a greeting
	// sshReady says bcvk-inner can log into the guest (the descriptor
	// watch's reclaim); reset with each boot.
	sshReady atomic.Bool
	// handoverReported says the systemd step was emitted for this boot.
	handoverReported atomic.Bool
	// vsockDead says the SSH probe found this boot's vsock device dead
	// and stopped QEMU (see vsockWatch).
	vsockDead atomic.Bool

	// warmBinds are the shares of a warm VM, hot-plugged once it runs.
	warmBinds []spec.Bind
	// warmPublish are a warm VM's published ports, added once it runs.
	warmPublish []spec.Publish
	// attachErr is why a saved VM's shares could not be attached (the
	// VM was then stopped).
	attachErr atomic.Pointer[error]

	kernel     kernel.Kernel // for the warm-start meta
	root       string        // the root transport used: virtiofs or erofs
	cfg        qemu.Config   // the QEMU that runs (after a KVM fallback)
	tp         transportPlan // how SSH reaches the guest
	dialer     vsock.Dialer  // the guest's vsock ports, with the vsock transport
	consoleLog *console.LogFile
	consoleOut io.Writer
}

func (s *supervisor) run(ctx context.Context, args []string) (int, error) {
	// SIGTERM from `podman stop`, SIGINT from a terminal: power the guest off.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer signal.Stop(sigs)

	logDir, err := s.openEvents()
	if err != nil {
		return ExitSetup, err
	}
	if s.sp, err = loadSpec(s.o, args); err != nil {
		return ExitSetup, err
	}
	s.ev.Emit(events.PhaseContainer, "bcvk-inner started")
	defer func() {
		if s.consoleLog != nil {
			s.consoleLog.Close()
		}
	}()
	m, err := s.prepare(ctx, logDir)
	if err != nil {
		return ExitSetup, err
	}
	stopProbe, err := s.afterBoot(ctx, m)
	defer func() { stopProbe() }()
	if err != nil {
		m.Kill()
		return ExitSetup, err
	}

	for restarts := 0; ; {
		if p, sig := s.next(m, sigs); p != nil {
			// The guest cannot go on without its file system: stop it, loudly.
			s.endReason = fmt.Sprintf("%s %s, so the VM was stopped%s", p.Name, p.ExitDescription(), p.Output())
			logrus.Error(s.endReason)
			m.Kill()
			return ExitHelper, nil
		} else if sig != nil {
			logrus.Infof("received %v: asking the guest to power off (up to %s)", sig, time.Duration(s.sp.ShutdownTimeout))
			l := ladder{qmp: m.QMP(), done: m.Done(), kill: m.Kill, timeout: time.Duration(s.sp.ShutdownTimeout),
				repeat: s.o.Timing.PowerdownRepeat, qmpWait: s.o.Timing.QMPTimeout}
			code, reason := l.run(ctx, sigs)
			s.endReason = reason
			m.Wait()
			m.StopHelpers()
			return code, nil
		}
		s.drain(m)
		stopProbe()
		if err := s.attachErr.Load(); err != nil {
			m.StopHelpers()
			s.endReason = "the shares could not be attached, so the VM was stopped"
			return ExitSetup, *err
		}
		// Two ends lose nothing of the guest's and cost a new boot, not
		// the run: a dead vsock device and an early QEMU crash.
		var again string
		if s.vsockDead.Swap(false) {
			why := fmt.Sprintf("the guest's vsock device answered nothing for %s after the guest init had loaded its driver", s.o.Timing.VsockSilence)
			if restarts >= maxRestarts || s.sp.Warm == spec.WarmRestore {
				m.StopHelpers()
				s.endReason = why + ", so the VM was stopped"
				logrus.Error(s.endReason)
				return ExitQEMU, nil
			}
			again = why + ": starting the VM again"
		} else {
			why, crashed := crashedEarly(s.state, m.QEMU(), s.sp.Warm == spec.WarmRestore)
			if !crashed || restarts >= maxRestarts {
				m.StopHelpers()
				code, reason := endOf(s.state, m.QEMU())
				s.endReason = reason
				if code != ExitPoweredOff {
					logrus.Error(reason)
				}
				return code, nil
			}
			again = fmt.Sprintf("QEMU crashed early in the boot, before the guest ran anything (%s): starting the VM again", why)
		}
		restarts++
		logrus.Warn(again)
		s.ev.Warn("", again)
		m.StopHelpers()
		if m, err = s.boot(ctx, s.cfg, nil); err != nil {
			return ExitSetup, err
		}
		stopProbe, _ = s.afterBoot(ctx, m) // never a restore: neither end restarts one
	}
}

// openEvents makes the run directory and opens the events file in the
// state directory (or, run by hand, the run directory), where the console
// log goes too.
func (s *supervisor) openEvents() (string, error) {
	if err := os.MkdirAll(s.o.RunDir, 0o700); err != nil {
		return "", err
	}
	logDir := s.o.RunDir
	if fi, err := os.Stat(s.o.StateDir); err == nil && fi.IsDir() {
		logDir = s.o.StateDir
	}
	// O_NOFOLLOW: the state directory is the host user's.
	if f, err := os.OpenFile(filepath.Join(logDir, spec.EventsFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_NOFOLLOW, 0o644); err == nil {
		s.eventsFile = f
		s.ev = events.NewWriter(f)
	}
	return logDir, nil
}

// observe feeds the classifier and reports the steps the host shows.
func (s *supervisor) observe(in guest.Input) {
	old := s.state
	s.state = guest.Step(old, in)
	if !old.Output && s.state.Output {
		s.ev.Emit(events.PhaseBooting, "the guest kernel is running")
	}
	if !old.HandedOver && s.state.HandedOver {
		s.reportHandover()
	}
}

// next follows m until QEMU exits (nil, nil), a helper dies or a signal
// arrives, feeding the classifier meanwhile.
func (s *supervisor) next(m *machine.Machine, sigs <-chan os.Signal) (*proc.Proc, os.Signal) {
	inputs := m.Inputs()
	for {
		select {
		case in, ok := <-inputs:
			if !ok {
				inputs = nil // the console ends a moment before QEMU is reaped
				continue
			}
			s.observe(in)
		case <-s.ready:
			s.observe(guest.Input{Kind: guest.SSHGreeted})
		case p := <-m.HelperDied():
			return p, nil
		case sig := <-sigs:
			return nil, sig
		case <-m.Done():
			return nil, nil
		}
	}
}

// drain feeds everything QEMU reported before it ended to the classifier.
func (s *supervisor) drain(m *machine.Machine) {
	for in := range m.Inputs() {
		s.observe(in)
	}
}
