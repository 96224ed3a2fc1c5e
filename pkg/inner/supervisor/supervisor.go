// Package supervisor is bcvk-inner's main job as PID 1 of the runner
// container: find the kernel, start virtiofsd and QEMU, follow the boot,
// report readiness, stop the guest on request and exit with a status that
// says how the VM ended.
package supervisor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/bcvk/bcvk/pkg/credential"
	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/console"
	"github.com/bcvk/bcvk/pkg/inner/guestinit"
	"github.com/bcvk/bcvk/pkg/inner/initramfs"
	"github.com/bcvk/bcvk/pkg/inner/kernel"
	"github.com/bcvk/bcvk/pkg/inner/proc"
	"github.com/bcvk/bcvk/pkg/inner/qemu"
	"github.com/bcvk/bcvk/pkg/inner/virtiofsd"
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

// Named timeouts.
const (
	virtiofsdStartTimeout = 10 * time.Second
	sshProbeInterval      = 100 * time.Millisecond
	sshProbeShortWait     = time.Second
	sshProbeMaxShort      = 120 // silent network probes before probing sshd anyway
	sshBannerTimeout      = 15 * time.Second
	kvmStatusInterval     = 50 * time.Millisecond
	// A silent KVM guest is judged by its instruction pointers, sampled
	// this often over about a second.
	kvmProgressSamples  = 5
	kvmProgressInterval = 250 * time.Millisecond
	qmpTimeout          = 2 * time.Second
	powerdownRepeat     = 3 * time.Second
	helperStopTimeout   = 2 * time.Second
	helperExitGrace     = 2 * time.Second // see helperDied
	earlyCrashRestarts  = 2               // see crashedEarly
	rootTag             = "rootfs"
)

// Options are the paths and programs; tests and direct runs may change them.
type Options struct {
	ImageRoot string
	StateDir  string
	RunDir    string
	DisksDir  string
	WarmDir   string
	QEMU      string
	QEMUImg   string
	Virtiofsd string
	KVMDevice string
	Stdin     io.Reader
	Stdout    io.Writer
	Stderr    io.Writer
}

// DefaultOptions are the runner image's.
func DefaultOptions() Options {
	return Options{
		ImageRoot: spec.ImageRoot, StateDir: spec.StateDir, RunDir: spec.RunDir,
		DisksDir: spec.DisksDir, WarmDir: spec.WarmDir, QEMU: qemu.DefaultBinary, QEMUImg: "qemu-img", Virtiofsd: virtiofsd.DefaultBinary, KVMDevice: "/dev/kvm",
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
	}
}

// Main runs the supervisor and returns the exit status.
func Main(args []string, o Options) int {
	logrus.SetOutput(o.Stderr)
	logrus.SetFormatter(&logrus.TextFormatter{DisableTimestamp: false, FullTimestamp: true})
	s := &supervisor{o: o, table: proc.NewTable()}
	defer s.table.Close()
	code, err := s.run(args)
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

	mu          sync.Mutex
	guestError  string // from the guest init's error line
	guestPanic  string // the kernel's panic line
	guestReboot bool   // the kernel said it restarts the system
	handedOver  bool   // the image's init has taken over

	kernelVersion string      // for the warm-start meta
	finalCfg      qemu.Config // the QEMU that runs (after a KVM fallback)
}

func (s *supervisor) loadSpec(args []string) error {
	path := filepath.Join(s.o.StateDir, spec.SpecFile)
	if _, err := os.Stat(path); err == nil {
		sp, err := spec.Read(path)
		if err != nil {
			return err
		}
		s.sp = sp
		return nil
	}
	// Started by hand with `podman run`: flags, and the console attached.
	sp := spec.New()
	sp.Console = true
	sp.VCPUs = runtime.NumCPU()
	fs := flag.NewFlagSet("bcvk-inner", flag.ContinueOnError)
	fs.SetOutput(s.o.Stderr)
	mem := fs.String("memory", "2G", "guest memory (e.g. 2G, 2048M)")
	fs.IntVar(&sp.VCPUs, "vcpus", sp.VCPUs, "guest CPUs")
	fs.StringVar(&sp.Accel, "accel", sp.Accel, "accelerator: auto, kvm or tcg")
	fs.Func("karg", "extra kernel argument (repeatable)", func(v string) error {
		sp.KernelArgs = append(sp.KernelArgs, v)
		return nil
	})
	fs.BoolVar(&sp.Console, "console", true, "attach the guest's serial console to stdio")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := spec.ParseMemoryMiB(*mem)
	if err != nil {
		return err
	}
	sp.MemoryMiB = m
	s.sp = sp
	return sp.Validate()
}

func (s *supervisor) run(args []string) (int, error) {
	// SIGTERM from `podman stop`, SIGINT from a terminal: power the guest off.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer signal.Stop(sigs)

	if err := os.MkdirAll(s.o.RunDir, 0o700); err != nil {
		return ExitSetup, err
	}
	logDir := s.o.RunDir
	if fi, err := os.Stat(s.o.StateDir); err == nil && fi.IsDir() {
		logDir = s.o.StateDir
	}
	if f, err := os.OpenFile(filepath.Join(logDir, spec.EventsFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err == nil {
		s.eventsFile = f
		s.ev = events.NewWriter(f)
	}
	if err := s.loadSpec(args); err != nil {
		return ExitSetup, err
	}
	s.ev.Emit(events.PhaseContainer, "bcvk-inner started")

	k, err := kernel.Find(s.o.ImageRoot)
	if err != nil {
		if _, statErr := os.Stat(s.o.ImageRoot); statErr != nil {
			err = fmt.Errorf("no image is mounted at %s: start the runner with --mount=type=image,source=IMAGE,destination=%s", s.o.ImageRoot, spec.ImageRoot)
		}
		return ExitSetup, err
	}
	vfsSocket := filepath.Join(s.o.RunDir, "virtiofs.sock")
	vp, err := s.startVirtiofsd(vfsSocket)
	if err != nil {
		return ExitSetup, err
	}
	// Until QEMU owns it, virtiofsd is ours to stop on every early return.
	defer func() {
		if vp != nil {
			vp.Signal(unix.SIGKILL)
		}
	}()
	initrd := filepath.Join(s.o.RunDir, "initramfs.img")
	var warm spec.WarmMeta
	if s.sp.Warm == spec.WarmRestore {
		// The saved VM booted with this initramfs: QEMU's line must match.
		initrd = filepath.Join(s.o.WarmDir, spec.WarmInitramfsFile)
		if warm, err = spec.ReadWarmMeta(s.o.WarmDir); err != nil {
			return ExitSetup, fmt.Errorf("reading the saved VM: %w", err)
		}
		if warm.KernelVersion != k.Version {
			return ExitSetup, fmt.Errorf("the saved VM ran kernel %s, the image has %s", warm.KernelVersion, k.Version)
		}
	} else if err := s.buildInitramfs(k, initrd); err != nil {
		return ExitSetup, err
	}

	cfg := qemu.Config{
		Binary: s.o.QEMU, Name: s.sp.Name, MemoryMiB: s.sp.MemoryMiB, VCPUs: s.sp.VCPUs,
		Kernel: k.Image, Initramfs: initrd,
		KernelArgs:     append(qemu.BaseKernelArgs(), s.sp.KernelArgs...),
		VirtiofsSocket: vfsSocket,
		RootTag:        rootTag,
		SSHForwardPort: spec.GuestSSHPort,
		NetProbePort:   spec.GuestNetProbePort,
		QMPSocket:      filepath.Join(s.o.RunDir, "qmp.sock"),
	}
	if cfg.Name == "" {
		cfg.Name = "vm"
	}
	if s.sp.SSHAuthorizedKey != "" {
		v, err := credential.SMBIOS("tmpfiles.extra", []byte(credential.AuthorizedKeyTmpfiles(s.sp.SSHAuthorizedKey)))
		if err != nil {
			return ExitSetup, err
		}
		cfg.SMBIOSCredentials = append(cfg.SMBIOSCredentials, v)
	}

	if cfg.Drives, err = s.prepareDisks(); err != nil {
		return ExitSetup, err
	}

	accel, probe, err := s.chooseAccel()
	if err != nil {
		return ExitSetup, err
	}
	if s.sp.Warm == spec.WarmRestore {
		accel, probe = warm.Accel, false
		cfg.SMBIOSCredentials = warm.SMBIOSCredentials
		cfg.Incoming = true
	}
	consoleLog, err := console.OpenLog(filepath.Join(logDir, spec.ConsoleFile), console.DefaultLogMax)
	if err != nil {
		return ExitSetup, err
	}
	defer consoleLog.Close()

	what := "kernel"
	if s.sp.Warm == spec.WarmRestore {
		what = "restoring a saved VM: kernel"
	}
	// Each start of QEMU is a kernel event: the host shows the step (again,
	// after a KVM fallback or a restart), with the accelerator really used.
	// A later start begins a fresh console log and its own virtiofsd.
	boot := func(cfg qemu.Config, vp *proc.Proc) (*vm, error) {
		if vp == nil {
			_ = consoleLog.Reset()
		}
		s.ev.Emit(events.PhaseKernel, fmt.Sprintf("%s %s, %s, %d MiB, %d vCPUs", what, k.Version, cfg.Accel, s.sp.MemoryMiB, s.sp.VCPUs))
		return s.start(cfg, consoleLog, vp)
	}
	cfg.Accel = accel
	vm, err := boot(cfg, vp)
	vp = nil
	if err != nil {
		return ExitSetup, err
	}
	if probe {
		if ok, why, broken := vm.waitFirstOutput(time.Duration(s.sp.AccelProbeTimeout)); !ok {
			if broken {
				msg := "KVM does not work here (" + why + "; nested KVM fails like this): booting again with TCG software emulation, which is slower"
				logrus.Warn(msg)
				s.ev.Warn(events.CodeKVMUnusable, msg) // the host remembers this
			} else {
				msg := "KVM boot unclear (" + why + "): booting this VM again with TCG software emulation"
				logrus.Warn(msg)
				s.ev.Emit(events.PhaseWarning, msg)
			}
			vm.kill()
			cfg.Accel = spec.AccelTCG
			if vm, err = boot(cfg, nil); err != nil {
				return ExitSetup, err
			}
		}
	}

	// The SSH probe watches one QEMU; a restarted VM gets a new one.
	stopProbe := func() {}
	defer func() { stopProbe() }()
	s.kernelVersion, s.finalCfg = k.Version, cfg
	switch {
	case s.sp.Warm == spec.WarmRestore:
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := s.restoreWarm(ctx, vm); err != nil {
			vm.kill()
			return ExitSetup, fmt.Errorf("restoring the saved VM: %w", err)
		}
	case s.sp.SSHAuthorizedKey != "":
		stopProbe = s.startProbe(vm)
	}

	for restarts := 0; ; restarts++ {
		select {
		case <-vm.qemu.Done():
			why, crashed := s.crashedEarly(vm)
			if !crashed || restarts >= earlyCrashRestarts {
				break
			}
			stopProbe()
			msg := fmt.Sprintf("QEMU crashed early in the boot, before the guest ran anything (%s): starting the VM again", why)
			logrus.Warn(msg)
			s.ev.Warn("", msg)
			vm.stopHelpers()
			if vm, err = boot(cfg, nil); err != nil {
				return ExitSetup, err
			}
			if s.sp.SSHAuthorizedKey != "" {
				stopProbe = s.startProbe(vm)
			}
			continue
		case p := <-vm.helperDied():
			// The guest cannot go on without its file system: stop it, loudly.
			s.endReason = fmt.Sprintf("%s %s, so the VM was stopped%s", p.Name, p.ExitDescription(), p.Output())
			logrus.Error(s.endReason)
			vm.kill()
			return ExitHelper, nil
		case sig := <-sigs:
			logrus.Infof("received %v: asking the guest to power off (up to %s)", sig, time.Duration(s.sp.ShutdownTimeout))
			if code, done := s.shutdown(vm, sigs); done {
				vm.stopHelpers()
				return code, nil
			}
		}
		break
	}
	stopProbe()
	vm.stopHelpers()
	return s.exitStatus(vm), nil
}

// prepareDisks creates the disk files the spec asks for and returns them as
// QEMU drives.
func (s *supervisor) prepareDisks() ([]qemu.Drive, error) {
	var drives []qemu.Drive
	for _, d := range s.sp.Disks {
		path := filepath.Join(s.o.DisksDir, d.File)
		if d.CreateSize > 0 {
			if err := s.createDisk(path, d); err != nil {
				return nil, fmt.Errorf("creating the disk %s: %w", d.File, err)
			}
		} else if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("disk %s: %w (is a host directory mounted at %s?)", d.File, err, s.o.DisksDir)
		}
		drives = append(drives, qemu.Drive{Path: path, Format: d.Format, Serial: d.Serial})
	}
	return drives, nil
}

func (s *supervisor) createDisk(path string, d spec.Disk) error {
	if d.Format == spec.FormatQCOW2 {
		return s.table.Run(context.Background(), io.Discard, s.o.QEMUImg, "create", "-q", "-f", "qcow2", path, fmt.Sprint(d.CreateSize))
	}
	// O_EXCL: a disk that is already there is not ours to overwrite.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(d.CreateSize); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// chooseAccel returns the accelerator and whether its first boot must be
// watched (auto with KVM).
func (s *supervisor) chooseAccel() (string, bool, error) {
	switch s.sp.Accel {
	case spec.AccelTCG:
		return spec.AccelTCG, false, nil
	case spec.AccelKVM:
		if err := qemu.KVMUsable(s.o.KVMDevice); err != nil {
			return "", false, fmt.Errorf("--accel kvm: %s is not usable: %v; pass the device to the container (podman --device /dev/kvm) or use --accel tcg", s.o.KVMDevice, err)
		}
		return spec.AccelKVM, false, nil
	}
	if err := qemu.KVMUsable(s.o.KVMDevice); err != nil {
		msg := fmt.Sprintf("KVM is not usable (%v): booting with TCG software emulation, which is much slower", err)
		logrus.Warn(msg)
		s.ev.Emit(events.PhaseWarning, msg)
		return spec.AccelTCG, false, nil
	}
	return spec.AccelKVM, true, nil
}

// startLogged starts a helper whose stdout and stderr go to our stderr (the
// container log) and are kept, the last lines of them, for error messages.
func (s *supervisor) startLogged(name string, cmd *exec.Cmd) (*proc.Proc, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	p, err := s.table.Start(name, cmd)
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	go p.CaptureOutput(r, os.Stderr)
	return p, nil
}

// startShares starts one virtiofsd per host directory and waits for each.
// They outlive a KVM fallback: QEMU reconnects to their sockets.
func (s *supervisor) startShares() ([]qemu.Share, []*proc.Proc, error) {
	var shares []qemu.Share
	var procs []*proc.Proc
	for i, b := range s.sp.Binds {
		sock := filepath.Join(s.o.RunDir, fmt.Sprintf("share%d.sock", i))
		_ = os.Remove(sock)
		cmd := exec.Command(s.o.Virtiofsd, virtiofsd.Args(virtiofsd.Config{
			Socket: sock, SharedDir: spec.BindSource(i), ReadOnly: b.ReadOnly, Coherent: true,
		})...)
		p, err := s.startLogged("virtiofsd for "+b.GuestPath, cmd)
		if err != nil {
			return nil, procs, err
		}
		procs = append(procs, p)
		if err := waitSocket(sock, p, virtiofsdStartTimeout); err != nil {
			return nil, procs, err
		}
		shares = append(shares, qemu.Share{Tag: spec.BindTag(i), Socket: sock})
	}
	return shares, procs, nil
}

// WriteInitramfs writes the initramfs bcvk would boot the image at
// imageRoot with, for benchmarks and debugging (`bcvk-inner initramfs`).
func WriteInitramfs(imageRoot, out string) error {
	s := &supervisor{table: proc.NewTable()}
	defer s.table.Close()
	k, err := kernel.Find(imageRoot)
	if err != nil {
		return err
	}
	// Scripts take this line as a path, so it is printed raw: refuse one
	// that the image's symlinks filled with control characters.
	if q := fmt.Sprintf("%q", k.Image); q != `"`+k.Image+`"` {
		return fmt.Errorf("the kernel path %s holds characters that bcvk does not print", q)
	}
	fmt.Println(k.Image)
	return s.buildInitramfs(k, out)
}

func (s *supervisor) buildInitramfs(k kernel.Kernel, path string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	var mounts []guestinit.Mount
	for i, b := range s.sp.Binds {
		mounts = append(mounts, guestinit.Mount{Tag: spec.BindTag(i), Path: b.GuestPath, ReadOnly: b.ReadOnly})
	}
	cfg, err := initramfs.Build(f, initramfs.Options{
		InitBinary: self, ImageMount: k.Root, ModulesDir: k.ModulesDir, RootTag: rootTag,
		Decompress: s.decompress, Mounts: mounts, ImageRoot: spec.GuestImageRoot,
	})
	if err != nil {
		return fmt.Errorf("building the boot initramfs: %w", err)
	}
	logrus.Debugf("initramfs modules: %v (missing: %v)", cfg.Modules, cfg.MissingModules)
	return f.Close()
}

// decompress runs argv (xz or zstd) as a filter from in to out. The module
// comes in already opened inside the image root, so the tool never opens a
// path that the image chose. out refuses writes past the size cap: then we
// stop reading, and the tool dies of SIGPIPE, or of our SIGKILL.
func (s *supervisor) decompress(argv []string, in *os.File, out io.Writer) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	er, ew, err := os.Pipe()
	if err != nil {
		r.Close()
		w.Close()
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, w, ew
	p, err := s.table.Start(argv[0], cmd)
	w.Close()
	ew.Close()
	if err != nil {
		r.Close()
		er.Close()
		return err
	}
	go p.CaptureOutput(er, io.Discard)
	_, copyErr := io.Copy(out, r)
	r.Close()
	if copyErr != nil {
		p.Signal(unix.SIGKILL)
	}
	<-p.Done()
	if copyErr != nil {
		return copyErr
	}
	if ws := p.Status(); !ws.Exited() || ws.ExitStatus() != 0 {
		return fmt.Errorf("%s %s%s", strings.Join(argv, " "), p.ExitDescription(), p.Output())
	}
	return nil
}

// vm is one running QEMU with its virtiofsd.
type vm struct {
	qemu, virtiofsd *proc.Proc
	shares          []*proc.Proc
	watcher         *console.Watcher
	firstOutput     chan struct{}
	consoleDone     chan struct{}
	qmpSocket       string
}

// startVirtiofsd starts virtiofsd on the image root without waiting for it,
// so that it comes up while the initramfs is built.
func (s *supervisor) startVirtiofsd(socket string) (*proc.Proc, error) {
	_ = os.Remove(socket)
	vfs := exec.Command(s.o.Virtiofsd, virtiofsd.Args(virtiofsd.Config{
		Socket: socket, SharedDir: s.o.ImageRoot, ReadOnly: true,
	})...)
	return s.startLogged("virtiofsd", vfs)
}

// start waits for virtiofsd (starting one if vp is nil) and starts QEMU.
func (s *supervisor) start(cfg qemu.Config, consoleLog io.Writer, vp *proc.Proc) (*vm, error) {
	if vp == nil {
		var err error
		if vp, err = s.startVirtiofsd(cfg.VirtiofsSocket); err != nil {
			return nil, err
		}
	}
	if err := waitSocket(cfg.VirtiofsSocket, vp, virtiofsdStartTimeout); err != nil {
		vp.Signal(unix.SIGKILL)
		return nil, err
	}
	// Each virtiofsd serves one QEMU: a new QEMU needs new ones.
	shares, shareProcs, err := s.startShares()
	killShares := func() {
		for _, p := range shareProcs {
			p.Signal(unix.SIGKILL)
		}
	}
	if err != nil {
		killShares()
		vp.Signal(unix.SIGKILL)
		return nil, err
	}
	cfg.Shares = shares

	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	// QEMU's own messages go to the container log and are kept for the
	// error when it fails.
	er, ew, err := os.Pipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	q := exec.Command(s.o.QEMU, qemu.Args(cfg)...)
	q.Stdout = w
	q.Stderr = ew
	if s.sp.Console {
		if f, ok := s.o.Stdin.(*os.File); ok {
			q.Stdin = f
		}
	}
	logrus.Debugf("qemu: %s %s", s.o.QEMU, strings.Join(qemu.Args(cfg), " "))
	qp, err := s.table.Start("qemu", q)
	w.Close()
	ew.Close()
	if err != nil {
		r.Close()
		er.Close()
		killShares()
		vp.Signal(unix.SIGKILL)
		return nil, err
	}
	go qp.CaptureOutput(er, os.Stderr)
	v := &vm{qemu: qp, virtiofsd: vp, shares: shareProcs, firstOutput: make(chan struct{}), consoleDone: make(chan struct{}), qmpSocket: cfg.QMPSocket}
	v.watcher = console.New(40)
	var once sync.Once
	v.watcher.OnFirstOutput = func() {
		once.Do(func() { close(v.firstOutput) })
		s.ev.Emit(events.PhaseBooting, "the guest kernel is running")
	}
	v.watcher.OnLine = s.onConsoleLine
	outs := []io.Writer{consoleLog}
	if s.sp.Console {
		outs = append(outs, s.o.Stdout)
	}
	go func() {
		defer close(v.consoleDone)
		defer r.Close()
		v.watcher.Copy(r, outs...)
	}()
	return v, nil
}

func (s *supervisor) onConsoleLine(l string) {
	switch {
	case strings.Contains(l, guestinit.ErrorMarker):
		msg := l[strings.Index(l, guestinit.ErrorMarker)+len(guestinit.ErrorMarker):]
		s.mu.Lock()
		s.guestError = msg
		s.mu.Unlock()
	case strings.Contains(l, "Kernel panic - not syncing"):
		s.mu.Lock()
		if s.guestPanic == "" {
			s.guestPanic = strings.TrimSpace(l[strings.Index(l, "Kernel panic"):])
		}
		s.mu.Unlock()
	case strings.Contains(l, guestinit.Marker+guestinit.HandoverMessage):
		// Once: the guest may print the line as often as it likes, and
		// every event is a line in the host's events file.
		s.mu.Lock()
		first := !s.handedOver
		s.handedOver = true
		s.mu.Unlock()
		if first {
			s.ev.Emit(events.PhaseSystemd, "the image's init has taken over")
		}
	case strings.Contains(l, "reboot: Restarting system"):
		// -no-reboot turns the reset into QEMU's exit.
		s.mu.Lock()
		s.guestReboot = true
		s.mu.Unlock()
	}
}

// waitFirstOutput watches a KVM boot. It succeeds when the guest prints
// anything, or when the guest is silent but its vCPUs run (a quiet guest or
// a loaded host). It fails when QEMU exits, when QEMU reports that KVM could
// not run the guest, or when the vCPUs made no progress within d: then
// broken says KVM itself failed, which the host remembers for later VMs. A
// failure that proves nothing about KVM falls back for this VM only.
func (v *vm) waitFirstOutput(d time.Duration) (ok bool, why string, broken bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(kvmStatusInterval)
	defer tick.Stop()
	for {
		select {
		case <-v.firstOutput:
			return true, "", false
		case <-v.qemu.Done():
			return false, "QEMU " + v.qemu.ExitDescription(), true
		case <-t.C:
			progress, err := v.sampleVCPUs()
			switch {
			case progress:
				logrus.Infof("the guest printed nothing within %s, but its vCPUs run: staying with KVM", d)
				return true, "", false
			case err != nil:
				return false, fmt.Sprintf("the guest printed nothing within %s and its vCPUs could not be read (%v)", d, err), false
			}
			return false, fmt.Sprintf("the guest printed nothing within %s and its vCPUs made no progress", d), true
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), qmpTimeout)
			st, err := qemu.Status(ctx, v.qmpSocket)
			cancel()
			if err == nil && (st == "internal-error" || st == "guest-panicked") {
				return false, "QEMU reports " + st, true
			}
		}
	}
}

// sampleVCPUs reads the vCPUs' instruction pointers a few times and says
// whether any moved; err is the last read's error when no read succeeded.
func (v *vm) sampleVCPUs() (bool, error) {
	var samples [][]uint64
	var lastErr error
	for i := 0; i < kvmProgressSamples; i++ {
		if i > 0 {
			select {
			case <-v.qemu.Done():
				return false, errors.New("QEMU " + v.qemu.ExitDescription())
			case <-time.After(kvmProgressInterval):
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), qmpTimeout)
		rips, err := qemu.InstructionPointers(ctx, v.qmpSocket)
		cancel()
		if err != nil || len(rips) == 0 {
			lastErr = err
			continue
		}
		samples = append(samples, rips)
	}
	if len(samples) < 2 {
		if lastErr == nil {
			lastErr = errors.New("no registers in QEMU's answer")
		}
		return false, lastErr
	}
	return qemu.VCPUsProgress(samples), nil
}

// startProbe watches v for SSH until the returned function is called.
func (s *supervisor) startProbe(v *vm) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	go s.probeSSH(ctx, v)
	return cancel
}

// crashedEarly reports a QEMU that died of a crash (not of a kill, which is
// somebody's intent) before the guest's init took over: nothing the guest
// could have done is lost, so the VM can simply start again. QEMU 10's TCG
// here aborts now and then in PCI set-up ("msix_table_mmio_write:
// Assertion ... failed", about 1 boot in 30 with two VMs at once).
func (s *supervisor) crashedEarly(v *vm) (string, bool) {
	ws := v.qemu.Status()
	if !ws.Signaled() || s.sp.Warm == spec.WarmRestore {
		return "", false
	}
	switch ws.Signal() {
	case unix.SIGABRT, unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE:
	default:
		return "", false
	}
	<-v.consoleDone
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handedOver || s.guestPanic != "" || s.guestError != "" {
		return "", false
	}
	return "QEMU " + v.qemu.ExitDescription() + v.qemu.Output(), true
}

func (v *vm) kill() {
	v.qemu.Signal(unix.SIGKILL)
	<-v.qemu.Done()
	<-v.consoleDone
	v.stopHelpers()
}

// helperDied delivers the first virtiofsd that ends while QEMU runs. A
// virtiofsd also ends when QEMU closes its socket on the way out (guest
// power-off or reboot), a moment before QEMU's own exit is seen: that one
// is not a failure.
func (v *vm) helperDied() <-chan *proc.Proc {
	ch := make(chan *proc.Proc, 1)
	for _, p := range append([]*proc.Proc{v.virtiofsd}, v.shares...) {
		go func() {
			select {
			case <-p.Done():
			case <-v.qemu.Done():
				return
			}
			grace := time.NewTimer(helperExitGrace)
			defer grace.Stop()
			select {
			case <-v.qemu.Done():
				return
			case <-grace.C:
			}
			select {
			case ch <- p:
			default:
			}
		}()
	}
	return ch
}

func (v *vm) stopHelpers() {
	all := append([]*proc.Proc{v.virtiofsd}, v.shares...)
	for _, p := range all {
		p.Signal(unix.SIGTERM)
	}
	t := time.NewTimer(helperStopTimeout)
	defer t.Stop()
	for _, p := range all {
		select {
		case <-p.Done():
			continue
		case <-t.C:
		}
		// Past the deadline: kill what is left.
		for _, q := range all {
			q.Signal(unix.SIGKILL)
		}
		for _, q := range all {
			<-q.Done()
		}
		return
	}
}

// waitSocket waits until path is a socket, failing early when p exits.
func waitSocket(path string, p *proc.Proc, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s %s before it was ready%s", p.Name, p.ExitDescription(), p.Output())
		case <-deadline.C:
			return fmt.Errorf("%s did not create %s within %s", p.Name, path, timeout)
		case <-tick.C:
		}
	}
}

// shutdown runs the ladder: ask the guest over QMP, wait, then kill. It
// returns done=true with a status when it decided the outcome itself.
func (s *supervisor) shutdown(v *vm, sigs <-chan os.Signal) (int, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), qmpTimeout)
	err := qemu.QMP(ctx, v.qmpSocket, "system_powerdown")
	cancel()
	if err != nil {
		logrus.Warnf("could not ask the guest to power off (%v); stopping QEMU", err)
		v.kill()
		s.endReason = "stopped on request; the guest could not be asked to power off"
		return ExitKilled, true
	}
	t := time.NewTimer(time.Duration(s.sp.ShutdownTimeout))
	defer t.Stop()
	// A power-button press is lost while the guest has nobody listening for
	// it yet (early in boot, before udev loaded the ACPI button driver and
	// logind opened it), so it is pressed again until the guest reacts.
	again := time.NewTicker(powerdownRepeat)
	defer again.Stop()
wait:
	for {
		select {
		case <-v.qemu.Done():
			<-v.consoleDone
			s.endReason = "the guest powered off on request"
			return ExitPoweredOff, true
		case <-again.C:
			ctx, cancel := context.WithTimeout(context.Background(), qmpTimeout)
			_ = qemu.QMP(ctx, v.qmpSocket, "system_powerdown")
			cancel()
		case <-t.C:
			logrus.Warnf("the guest did not power off within %s; killing QEMU", time.Duration(s.sp.ShutdownTimeout))
			break wait
		case sig := <-sigs:
			logrus.Warnf("received %v again; killing QEMU", sig)
			break wait
		}
	}
	v.kill()
	s.endReason = "the guest did not power off in time and was killed"
	return ExitKilled, true
}

func (s *supervisor) exitStatus(v *vm) int {
	<-v.consoleDone
	s.mu.Lock()
	gerr, panicLine, reboot := s.guestError, s.guestPanic, s.guestReboot
	s.mu.Unlock()
	ws := v.qemu.Status()
	switch {
	case gerr != "":
		s.endReason = "the guest could not boot: " + gerr
		logrus.Error(s.endReason)
		return ExitGuestBoot
	case panicLine != "":
		s.endReason = "the guest kernel panicked: " + panicLine
		logrus.Error(s.endReason)
		return ExitPanic
	case ws.Exited() && ws.ExitStatus() == 0 && reboot:
		s.endReason = "the guest rebooted, and an ephemeral VM ends when its guest reboots"
		return ExitPoweredOff
	case ws.Exited() && ws.ExitStatus() == 0:
		s.endReason = "the guest powered off"
		return ExitPoweredOff
	}
	s.endReason = "QEMU " + v.qemu.ExitDescription() + v.qemu.Output()
	logrus.Error(s.endReason)
	return ExitQEMU
}

// probeSSH reports SSH ready when the guest's sshd greets. A greeting is
// enough: the key arrives as a credential that systemd-tmpfiles installs in
// sysinit.target, long before sshd starts, and a test login would cost a
// whole session start (seconds under TCG) that the user's own login then
// pays again.
//
// Probing through QEMU's user networking has two traps:
//   - Before the guest has an address, QEMU accepts our connection and
//     retries its SYN towards the guest with growing back-off, even after we
//     close our end: a probe can sit for many seconds after sshd is up, and
//     a probe we gave up on reaches sshd later anyway.
//   - OpenSSH 9.8+ blocks a source after about 15 connections that close
//     without logging in (PerSourcePenalties), and all our connections come
//     from one address.
//
// So first the guest's network is probed on a port where nothing listens
// (spec.GuestNetProbePort, forwarded to the guest's port 1): silent means no
// address yet, so the probe is replaced by a fresh one quickly; a refusal
// means the guest is on the network. Only then is sshd probed, one
// connection at a time, each waiting patiently for its greeting.
func (s *supervisor) probeSSH(ctx context.Context, v *vm) {
	netAddr := fmt.Sprintf("127.0.0.1:%d", spec.GuestNetProbePort)
	sshAddr := fmt.Sprintf("127.0.0.1:%d", spec.GuestSSHPort)
	netUp := false
	silent := 0
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-v.qemu.Done():
			return
		case <-pause.C:
		}
		if !netUp {
			switch banner(ctx, netAddr, sshProbeShortWait) {
			case probeRefused:
				netUp = true
				logrus.Debug("the guest is on the network; probing sshd")
			case probeSilent, probeGreeted:
				// Something listens on the probe port: rely on sshd probes.
				if silent++; silent >= sshProbeMaxShort {
					netUp = true
				}
			}
			pause.Reset(0)
			continue
		}
		if banner(ctx, sshAddr, sshBannerTimeout) == probeGreeted {
			if s.sp.Warm == spec.WarmSave {
				s.saveWarm(ctx, v)
			}
			s.ev.Emit(events.PhaseSSH, "SSH is ready")
			logrus.Info("SSH is ready")
			return
		}
		pause.Reset(sshProbeInterval)
	}
}

type probeResult int

const (
	probeFailed  probeResult = iota // could not connect at all
	probeRefused                    // closed at once: nothing listens in the guest yet
	probeSilent                     // no greeting within the wait
	probeGreeted                    // "SSH-" arrived
)

// banner makes one connection to addr and waits up to wait for a greeting.
func banner(ctx context.Context, addr string, wait time.Duration) probeResult {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return probeFailed
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	var ne net.Error
	switch {
	case err == nil && string(buf) == "SSH-":
		return probeGreeted
	case errors.As(err, &ne) && ne.Timeout():
		return probeSilent
	}
	return probeRefused
}
