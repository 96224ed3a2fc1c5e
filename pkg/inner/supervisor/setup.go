package supervisor

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/bcvk/bcvk/pkg/credential"
	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/cidata"
	"github.com/bcvk/bcvk/pkg/inner/guestinit"
	"github.com/bcvk/bcvk/pkg/inner/initramfs"
	"github.com/bcvk/bcvk/pkg/inner/kargsd"
	"github.com/bcvk/bcvk/pkg/inner/kernel"
	"github.com/bcvk/bcvk/pkg/inner/machine"
	"github.com/bcvk/bcvk/pkg/inner/proc"
	"github.com/bcvk/bcvk/pkg/inner/qemu"
	"github.com/bcvk/bcvk/pkg/inner/swap"
	"github.com/bcvk/bcvk/pkg/inner/virtiofsd"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// loadSpec reads the host's spec, or, when started by hand with `podman
// run`, takes flags and attaches the console.
func loadSpec(o Options, args []string) (spec.Spec, error) {
	path := filepath.Join(o.StateDir, spec.SpecFile)
	if _, err := os.Stat(path); err == nil {
		return spec.Read(path)
	}
	fs := flag.NewFlagSet("bcvk-inner", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	parse := specFlags(fs)
	if err := fs.Parse(args); err != nil {
		return spec.Spec{}, err
	}
	return parse()
}

// specFlags registers the runner's flags on fs; the returned function
// makes the validated spec after fs.Parse.
func specFlags(fs *flag.FlagSet) func() (spec.Spec, error) {
	sp := spec.New()
	sp.VCPUs = runtime.NumCPU()
	mem := fs.String("memory", "2G", "guest memory (e.g. 2G, 2048M)")
	fs.IntVar(&sp.VCPUs, "vcpus", sp.VCPUs, "guest CPUs")
	fs.StringVar(&sp.Accel, "accel", sp.Accel, "accelerator: auto, kvm or tcg")
	fs.Func("karg", "extra kernel argument (repeatable)", func(v string) error {
		sp.KernelArgs = append(sp.KernelArgs, v)
		return nil
	})
	fs.BoolVar(&sp.Console, "console", true, "attach the guest's serial console to stdio")
	fs.StringVar(&sp.Name, "name", sp.Name, "the VM's name (QEMU's -name bcvk-NAME)")
	return func() (spec.Spec, error) {
		m, err := spec.ParseMemoryMiB(*mem)
		if err != nil {
			return sp, err
		}
		sp.MemoryMiB = m
		return sp, sp.Validate()
	}
}

// qemuConfig is the QEMU of this spec (accelerator still unset).
func qemuConfig(o Options, sp spec.Spec, img imageFacts, kernelImage, initrd string) (qemu.Config, error) {
	cfg := qemu.Config{
		Binary: o.QEMU, Name: sp.Name, MemoryMiB: sp.MemoryMiB, VCPUs: sp.VCPUs,
		Kernel: kernelImage, Initramfs: initrd,
		// The image's kargs.d before the user's, which win.
		KernelArgs:     append(append(append(qemu.BaseKernelArgs(), kargsd.Args(img.kargs)...), bcvkKernelArgs(sp)...), sp.KernelArgs...),
		VirtiofsSocket: filepath.Join(o.RunDir, "virtiofs.sock"),
		RootTag:        rootTag,
		SSHForwardPort: spec.GuestSSHPort,
		NetProbePort:   spec.GuestNetProbePort,
		QMPSocket:      filepath.Join(o.RunDir, "qmp.sock"),
	}
	if cfg.Name == "" {
		cfg.Name = "vm"
	}
	for i := range sp.Binds {
		cfg.Shares = append(cfg.Shares, bindShare(o, i))
	}
	if sp.HostStorage != nil {
		cfg.Shares = append(cfg.Shares, qemu.Share{Tag: spec.HostStorageTag, Socket: filepath.Join(o.RunDir, "hoststorage.sock")})
	}
	for _, d := range sp.Disks {
		cfg.Drives = append(cfg.Drives, qemu.Drive{Path: filepath.Join(o.DisksDir, d.File), Format: d.Format, Serial: d.Serial})
	}
	for i, d := range sp.AttachedDisks {
		cfg.Drives = append(cfg.Drives, qemu.Drive{Path: spec.AttachedDiskPath(i), Format: d.Format, Serial: d.Serial, ReadOnly: d.ReadOnly})
	}
	if sp.SwapBytes > 0 {
		cfg.Drives = append(cfg.Drives, qemu.Drive{Path: spec.SwapFile, Format: spec.FormatRaw, Serial: spec.SwapSerial})
	}
	if sp.CloudInit != nil {
		cfg.Drives = append(cfg.Drives, qemu.Drive{Path: cloudInitDisk(o), Format: spec.FormatRaw, Serial: cidata.Serial, ReadOnly: true})
	}
	for i, p := range sp.Publish {
		cfg.Forwards = append(cfg.Forwards, qemu.Forward{ContainerPort: spec.PublishContainerPort(i), GuestPort: p.GuestPort})
	}
	if sp.SSHAuthorizedKey != "" {
		// root always: bcvk-inner's own logins (warm start) are root's.
		users := []string{spec.DefaultSSHUser}
		if u := sp.LoginUser(); u != spec.DefaultSSHUser {
			users = append(users, u)
		}
		tmpfiles := credential.AuthorizedKeyTmpfiles(sp.SSHAuthorizedKey, users...)
		if img.createUser {
			sysusers, home := credential.UserSysusers(sp.SSHUser, img.shell)
			v, err := credential.SMBIOS("sysusers.extra", []byte(sysusers))
			if err != nil {
				return cfg, err
			}
			cfg.SMBIOSCredentials = append(cfg.SMBIOSCredentials, v)
			tmpfiles += home
		}
		v, err := credential.SMBIOS("tmpfiles.extra", []byte(tmpfiles))
		if err != nil {
			return cfg, err
		}
		cfg.SMBIOSCredentials = append(cfg.SMBIOSCredentials, v)
	}
	return cfg, nil
}

// machineConfig is the machine that runs cfg: the root's virtiofsd first
// (it may be started early), then one per share. Pure: nothing runs.
func machineConfig(o Options, sp spec.Spec, cfg qemu.Config) machine.Config {
	var hs []machine.Helper
	if cfg.RootDisk == "" { // an EROFS root disk needs no virtiofsd
		hs = append(hs, machine.Helper{Name: "virtiofsd", Socket: cfg.VirtiofsSocket,
			Argv: append([]string{o.Virtiofsd}, virtiofsd.Args(virtiofsd.Config{Socket: cfg.VirtiofsSocket, SharedDir: o.ImageRoot, ReadOnly: true})...)})
	}
	for i, b := range sp.Binds {
		hs = append(hs, bindHelper(o, i, b, cfg.Shares[i].Socket))
	}
	if sp.HostStorage != nil {
		// Coherent: images the host pulls or removes while the VM runs show.
		sock := cfg.Shares[len(sp.Binds)].Socket
		hs = append(hs, machine.Helper{Name: "virtiofsd for the host's container storage", Socket: sock,
			Argv: append([]string{o.Virtiofsd}, virtiofsd.Args(virtiofsd.Config{Socket: sock, SharedDir: spec.HostStorageDir, ReadOnly: true, Coherent: true})...)})
	}
	return machine.Config{Helpers: hs, QEMU: append([]string{o.QEMU}, qemu.Args(cfg)...), QMPSocket: cfg.QMPSocket, Stderr: o.Stderr}
}

// bcvkKernelArgs are the kernel arguments the spec's options need.
func bcvkKernelArgs(sp spec.Spec) []string {
	var a []string
	if sp.SwapBytes > 0 {
		a = append(a, spec.SwapKernelArg())
	}
	return a
}

// bindShare is the virtiofs device of the i-th share.
func bindShare(o Options, i int) qemu.Share {
	return qemu.Share{Tag: spec.BindTag(i), Socket: filepath.Join(o.RunDir, fmt.Sprintf("share%d.sock", i))}
}

// bindHelper is the virtiofsd of the i-th share, b, on socket sock.
func bindHelper(o Options, i int, b spec.Bind, sock string) machine.Helper {
	return machine.Helper{Name: "virtiofsd for " + b.GuestPath, Socket: sock,
		Argv: append([]string{o.Virtiofsd}, virtiofsd.Args(virtiofsd.Config{Socket: sock, SharedDir: spec.BindSource(i), ReadOnly: b.ReadOnly, Coherent: true})...)}
}

// prepareDisks creates the disk files the spec asks for and checks the rest.
func (s *supervisor) prepareDisks(ctx context.Context) error {
	for i, d := range s.sp.AttachedDisks {
		if _, err := os.Stat(spec.AttachedDiskPath(i)); err != nil {
			return fmt.Errorf("disk file %s: %w (is it mounted at %s?)", d.Host, err, spec.AttachedDiskPath(i))
		}
	}
	if s.sp.SwapBytes > 0 {
		if err := swap.Create(spec.SwapFile, s.sp.SwapBytes); err != nil {
			return fmt.Errorf("making the swap disk: %w", err)
		}
	}
	for _, d := range s.sp.Disks {
		path := filepath.Join(s.o.DisksDir, d.File)
		if d.CreateSize > 0 {
			if err := s.createDisk(ctx, path, d); err != nil {
				return fmt.Errorf("creating the disk %s: %w", d.File, err)
			}
		} else if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("disk %s: %w (is a host directory mounted at %s?)", d.File, err, s.o.DisksDir)
		}
	}
	return nil
}

func (s *supervisor) createDisk(ctx context.Context, path string, d spec.Disk) error {
	if d.Format == spec.FormatQCOW2 {
		return s.table.Run(ctx, io.Discard, s.o.QEMUImg, "create", "-q", "-f", "qcow2", path, fmt.Sprint(d.CreateSize))
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

// cloudInitDisk is where the cloud-init seed disk is made: the container's
// tmpfs, gone with the container.
func cloudInitDisk(o Options) string { return filepath.Join(o.RunDir, "cidata.img") }

// prepareCloudInit makes the cloud-init seed disk, if the spec has a seed.
func (s *supervisor) prepareCloudInit(ctx context.Context) error {
	if s.sp.CloudInit == nil {
		return nil
	}
	run := func(ctx context.Context, argv []string) error { return s.table.Run(ctx, io.Discard, argv...) }
	return cidata.Build(ctx, run, cidata.Files(s.sp.CloudInit, s.sp.Name), filepath.Join(s.o.RunDir, "cidata"), cloudInitDisk(s.o))
}

// chooseAccel returns the accelerator and whether its first boot must be
// watched (auto with KVM).
func (s *supervisor) chooseAccel() (string, bool, error) {
	switch s.sp.Accel {
	case spec.AccelTCG:
		return spec.AccelTCG, false, nil
	case spec.AccelKVM:
		if err := s.o.KVMUsable(s.o.KVMDevice); err != nil {
			return "", false, fmt.Errorf("--accel kvm: %s is not usable: %v; pass the device to the container (podman --device /dev/kvm) or use --accel tcg", s.o.KVMDevice, err)
		}
		return spec.AccelKVM, false, nil
	}
	if err := s.o.KVMUsable(s.o.KVMDevice); err != nil {
		msg := fmt.Sprintf("KVM is not usable (%v): booting with TCG software emulation, which is much slower", err)
		logrus.Warn(msg)
		s.ev.Emit(events.PhaseWarning, msg)
		return spec.AccelTCG, false, nil
	}
	return spec.AccelKVM, true, nil
}

// WriteInitramfs writes the initramfs bcvk would boot the image at
// imageRoot with, for benchmarks and debugging (`bcvk-inner initramfs`).
func WriteInitramfs(imageRoot, out string) error {
	t := proc.NewTable()
	defer t.Close()
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
	return buildInitramfs(context.Background(), t, spec.New(), k, "", 0, out)
}

// buildInitramfs writes the boot initramfs to path; rootSerial, when set,
// is the serial of the EROFS root disk the guest mounts.
// reportPort, when set, loads the vsock modules and makes the guest init
// report its steps to that host port.
func buildInitramfs(ctx context.Context, t *proc.Table, sp spec.Spec, k kernel.Kernel, rootSerial string, reportPort uint32, path string) error {
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
	for i, b := range sp.Binds {
		mounts = append(mounts, guestinit.Mount{Tag: spec.BindTag(i), Path: b.GuestPath, ReadOnly: b.ReadOnly})
	}
	var storage *guestinit.Storage
	if sp.HostStorage != nil {
		storage = &guestinit.Storage{Tag: spec.HostStorageTag, Path: spec.GuestHostStorage, Driver: sp.HostStorage.Driver}
	}
	decompress := func(argv []string, in *os.File, out io.Writer) error { return decompress(ctx, t, argv, in, out) }
	cfg, err := initramfs.Build(f, initramfs.Options{
		InitBinary: self, ImageMount: k.Root, ModulesDir: k.ModulesDir, RootTag: rootTag, RootDiskSerial: rootSerial,
		Decompress: decompress, Mounts: mounts, Storage: storage, Vsock: reportPort != 0, ReportPort: reportPort,
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
func decompress(ctx context.Context, t *proc.Table, argv []string, in *os.File, out io.Writer) error {
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
	p, err := t.Start(argv[0], cmd)
	w.Close()
	ew.Close()
	if err != nil {
		r.Close()
		er.Close()
		return err
	}
	go p.CaptureOutput(er, io.Discard)
	stop := context.AfterFunc(ctx, func() { p.Signal(unix.SIGKILL) })
	defer stop()
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
