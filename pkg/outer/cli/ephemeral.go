package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/outer/ephemeral"
	"github.com/bcvk/bcvk/pkg/outer/vm"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/version"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newEphemeralCommand(g *globals, st Streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "ephemeral",
		Short: "Boot bootc images as throw-away VMs",
	}
	c.AddCommand(
		withConfig(newRunCommand(g, st), vmConfigKeys()...),
		withConfig(newRunSSHCommand(g, st), vmConfigKeys()...),
		newSSHCommand(g, st),
		newPsCommand(g, st),
		newRmCommand(g, st),
		newRmAllCommand(g, st),
		newLogsCommand(g, st),
		newSSHConfigCommand(g, st),
		newWaitCommand(g, st),
		newCpCommand(g, st),
	)
	return c
}

// machineFlags are the flags of every VM bcvk boots: `ephemeral run` and
// `run-ssh` register them, and to-disk for its installer VM.
type machineFlags struct {
	memory        string
	vcpus         int
	accel         string
	readyTimeout  time.Duration
	pull          string
	tlsVerify     bool
	rootTransport string
	sshTransport  string
}

// register adds the flags; guest and machine name the VM in their help
// ("guest", "VM"; to-disk's "installer VM" for both).
func (f *machineFlags) register(fs *pflag.FlagSet, guest, machine string) {
	fs.StringVar(&f.memory, "memory", "2G", guest+" memory: 4G, 2048M, or a plain number of MiB")
	fs.IntVar(&f.vcpus, "vcpus", defaultVCPUs(), "number of "+guest+" CPUs (default: host CPUs, at most 4)")
	fs.StringVar(&f.accel, "accel", spec.AccelAuto, "accelerator: auto (KVM if it works, else TCG), kvm or tcg")
	fs.DurationVar(&f.readyTimeout, "timeout", vm.DefaultReadyTimeout, "how long to wait for the "+machine+" to answer SSH")
	fs.StringVar(&f.pull, "pull", vm.PullMissing, "pull the image: missing, always or never")
	fs.BoolVar(&f.tlsVerify, "tls-verify", true, "verify TLS when pulling (--tls-verify=false turns it off)")
	fs.StringVar(&f.rootTransport, "root-transport", spec.RootAuto, "how the "+guest+" reaches the image root: virtiofs (served by virtiofsd), erofs (an EROFS image of it, built once per image in ~/.cache/bcvk/erofs, as a read-only disk) or auto")
	fs.StringVar(&f.sshTransport, "ssh-transport", spec.TransportAuto, "how SSH reaches the "+guest+": vsock (sshd on vsock port 22, started by systemd 256 and later; needs no network), tcp (the guest's port 22 through QEMU's user network) or auto (vsock where the image supports it)")
}

func (f *machineFlags) pullOptions() (vm.PullOptions, error) {
	switch f.pull {
	case vm.PullMissing, vm.PullAlways, vm.PullNever:
	default:
		return vm.PullOptions{}, usageError{fmt.Errorf("--pull %q: use missing, always or never", f.pull)}
	}
	return vm.PullOptions{Policy: f.pull, TLSVerify: f.tlsVerify}, nil
}

// pullOpts returns the pull options; spec() has validated them.
func (f *machineFlags) pullOpts() vm.PullOptions {
	o, _ := f.pullOptions()
	return o
}

// spec validates the flags into a Spec with the machine's size and
// accelerator.
func (f *machineFlags) spec() (spec.Spec, error) {
	sp := spec.New()
	mem, err := spec.ParseMemoryMiB(f.memory)
	if err != nil {
		return sp, usageError{fmt.Errorf("--memory: %w", err)}
	}
	sp.MemoryMiB = mem
	sp.VCPUs = f.vcpus
	sp.Accel = f.accel
	switch f.rootTransport {
	case spec.RootVirtiofs, spec.RootErofs, spec.RootAuto:
		sp.RootTransport = f.rootTransport
	default:
		return sp, usageError{fmt.Errorf("--root-transport %q: use virtiofs, erofs or auto", f.rootTransport)}
	}
	switch f.sshTransport {
	case spec.TransportAuto, spec.TransportVsock, spec.TransportTCP:
		sp.SSHTransport = f.sshTransport
	default:
		return sp, usageError{fmt.Errorf("--ssh-transport %q: use vsock, tcp or auto", f.sshTransport)}
	}
	if _, err := f.pullOptions(); err != nil {
		return sp, err
	}
	if f.readyTimeout <= 0 {
		return sp, usageError{fmt.Errorf("--timeout must be positive, e.g. 5m")}
	}
	return sp, nil
}

func defaultVCPUs() int {
	// Under TCG each vCPU is a host thread: more than the host has, or than
	// a boot can use, slows it down.
	return min(runtime.NumCPU(), 4)
}

// vmFlags are an ephemeral VM's: the machine, its name, kernel arguments,
// shares, fast boot and warm start.
type vmFlags struct {
	machineFlags
	name    string
	kargs   []string
	binds   []string
	roBinds []string
	fast    bool
	warm    bool
	// storage shares the host's container storage (--bind-storage-ro).
	storage bool
	sshUser string
	network string
	// The VM options: ports, disk files, swap and instance type.
	publish   []string
	diskFiles []string
	swap      string
	itype     string
	flags     *pflag.FlagSet
	journal   string // --journal FILE
	// cloudInit is a NoCloud seed directory (--cloud-init).
	cloudInit string
}

func (f *vmFlags) register(fs *pflag.FlagSet) {
	f.machineFlags.register(fs, "guest", "VM")
	fs.StringVar(&f.name, "name", "", "name of the VM (default: bcvk-RANDOM)")
	fs.StringArrayVar(&f.kargs, "karg", nil, "extra kernel argument (repeatable)")
	fs.StringArrayVar(&f.binds, "bind", nil, "share a host directory into the guest: HOST[:GUEST-PATH] (default /mnt/BASENAME; repeatable)")
	fs.StringArrayVar(&f.roBinds, "ro-bind", nil, "like --bind, read-only in the guest")
	fs.BoolVar(&f.warm, "warm", false, "warm start: restore a VM saved after an earlier boot with the same image and options (the first run boots and saves it, about 220 MB in ~/.cache/bcvk/warm). Restored VMs are clones: same machine-id, host keys and random state; the clock is set on restore; --bind/--ro-bind shares (up to 4) are hot-plugged and -p ports added after the restore")
	fs.BoolVar(&f.storage, "bind-storage-ro", false, "share the host's container storage read-only: the guest's podman lists and runs the host's images without pulling (an additional image store at "+spec.GuestHostStorage+")")
	fs.StringVar(&f.sshUser, "ssh-user", spec.DefaultSSHUser, "log in as this guest user; the VM's key is authorized for it (and for root); a user the image lacks is created at boot by systemd-sysusers")
	fs.StringVar(&f.network, "network", spec.NetworkUser, "the guest's network: user (QEMU's user network: outbound access) or none (no network device at all; SSH, commands and binds still work over vsock and virtiofs)")
	fs.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a guest port on the host: [IP:]HOSTPORT:GUESTPORT[/tcp], on 127.0.0.1 unless an IP is given (repeatable), e.g. -p 8080:80")
	fs.StringArrayVar(&f.diskFiles, "mount-disk-file", nil, "attach a raw or qcow2 file as a virtio disk: FILE[:NAME[:FORMAT]][:ro]; the guest sees /dev/disk/by-id/virtio-NAME (NAME defaults to the file name without extension; repeatable)")
	fs.StringVar(&f.swap, "add-swap", "", "give the guest a swap disk of this size (e.g. 1G), made for the VM and removed with it; needs systemd 254 or later in the guest")
	fs.StringVar(&f.itype, "itype", "", "instance type: vCPUs and memory by name, as KubeVirt's u1 series (u1.small, u1.medium, u1.large, ...); --memory and --vcpus win; --itype help lists them")
	f.flags = fs
	fs.StringVar(&f.journal, "journal", "", "have the guest's journald forward its journal, written to `FILE` as plain lines while the VM runs (created or emptied first; needs systemd 256 or later in the guest and SSH over vsock); 'bcvk ephemeral logs --journal NAME' shows it too. Off by default: journald waits for the host while it forwards")
	fs.StringVar(&f.cloudInit, "cloud-init", "", "attach the NoCloud seed in `DIR` for images with cloud-init: user-data (required), meta-data (default: instance-id: bcvk-NAME) and network-config (optional), at most 1 MiB together, read when bcvk starts; the guest sees a read-only disk labelled CIDATA")
	fs.BoolVar(&f.fast, "fast", false, "boot faster with less fidelity; adds these kernel arguments:"+fastHelp())
}

// fastHelp lists what --fast adds and gives up, for --help.
func fastHelp() string {
	var b strings.Builder
	for _, a := range spec.FastKernelArgs {
		fmt.Fprintf(&b, "\n  %s: %s", a.Arg, a.Why)
	}
	return b.String()
}

// spec validates the flags into a Spec; every problem is reported at once,
// before anything starts.
func (f *vmFlags) spec() (spec.Spec, error) {
	sp, err := f.machineFlags.spec()
	if err != nil {
		return sp, err
	}
	sp.Name = f.name
	sp.KernelArgs = f.kargs
	if f.itype != "" {
		it, err := lookupItype(f.itype)
		if err != nil {
			return sp, err
		}
		if !f.flags.Changed("memory") {
			sp.MemoryMiB = it.MemoryMiB
		}
		if !f.flags.Changed("vcpus") {
			sp.VCPUs = it.VCPUs
		}
	}
	switch f.network {
	case spec.NetworkUser:
	case spec.NetworkNone:
		if f.sshTransport == spec.TransportTCP {
			return sp, usageError{errors.New("--network none leaves no network for --ssh-transport tcp: use vsock or auto")}
		}
		sp.Network = spec.NetworkNone
	default:
		return sp, usageError{fmt.Errorf("--network %q: use user or none", f.network)}
	}
	if f.sshUser != spec.DefaultSSHUser {
		sp.SSHUser = f.sshUser
	}
	if f.warm && f.storage {
		return sp, usageError{errors.New("--warm cannot be combined with --bind-storage-ro: a saved VM cannot set up the host's container storage (--bind and --ro-bind work)")}
	}
	if f.fast {
		sp.KernelArgs = append(spec.FastArgs(), f.kargs...)
	}
	if f.cloudInit != "" {
		if sp.CloudInit, err = readCloudInit(f.cloudInit, f.warm); err != nil {
			return sp, err
		}
	}
	cwd, err := os.Getwd()
	if err != nil {
		return sp, err
	}
	for _, set := range []struct {
		specs []string
		ro    bool
		flag  string
	}{{f.binds, false, "--bind"}, {f.roBinds, true, "--ro-bind"}} {
		for _, b := range set.specs {
			bind, err := spec.ParseBind(b, cwd, set.ro)
			if err != nil {
				return sp, usageError{fmt.Errorf("%s: %w", set.flag, err)}
			}
			if fi, err := os.Stat(bind.Host); err != nil || !fi.IsDir() {
				return sp, usageError{fmt.Errorf("%s %s: %s is not a directory on this host", set.flag, b, bind.Host)}
			}
			sp.Binds = append(sp.Binds, bind)
		}
	}
	if sp.AttachedDisks, err = parseDiskFiles(f.diskFiles, cwd); err != nil {
		return sp, usageError{err}
	}
	if sp.SwapBytes, err = parseSwap(f.swap); err != nil {
		return sp, usageError{err}
	}
	if len(f.publish) > 0 && sp.Network == spec.NetworkNone {
		return sp, usageError{errors.New("-p needs a network: leave out --network none")}
	}
	if f.warm && (len(f.diskFiles) > 0 || f.swap != "") {
		return sp, usageError{errors.New("--warm cannot be combined with --mount-disk-file or --add-swap: a saved VM cannot take new disks; leave out --warm")}
	}
	if sp.Journal, err = journalPath(f.journal); err != nil {
		return sp, usageError{err}
	}
	if err := sp.Validate(); err != nil {
		return sp, usageError{err}
	}
	// Last: binding the ports is the one check with an effect on the host.
	if sp.Publish, err = parsePublish(f.publish); err != nil {
		return sp, usageError{err}
	}
	return sp, nil
}

// itypeHelp prints the instance types when --itype help was given.
func (f *vmFlags) itypeHelp(w io.Writer) bool { return itypeHelp(f.itype, w) }

func newRunSSHCommand(g *globals, st Streams) *cobra.Command {
	var f vmFlags
	c := &cobra.Command{
		Use:   "run-ssh IMAGE [-- COMMAND [ARG...]]",
		Short: "Boot IMAGE, run COMMAND (or a shell) over SSH, then remove the VM",
		Long: `Boot IMAGE as an ephemeral VM, wait until it answers SSH, run COMMAND in it
(or an interactive shell when COMMAND is absent and stdin is a terminal),
and remove the VM and everything made for it on every exit path.
stdin, stdout and stderr pass through, and bcvk exits with COMMAND's status.`,
		Example: `  bcvk ephemeral run-ssh localhost/bcvk-sample:latest -- systemctl is-system-running
  bcvk ephemeral run-ssh --memory 4G --vcpus 2 quay.io/fedora/fedora-bootc:42
  bcvk ephemeral run-ssh --itype u1.large --add-swap 2G --mount-disk-file data.img:data:raw:ro IMAGE -- lsblk
  bcvk ephemeral run-ssh --cloud-init ./seed localhost/my-cloud-init-image -- cloud-init status --wait
  bcvk ephemeral run-ssh --journal ./boot-journal.log localhost/bcvk-sample:latest -- true`,
		Args: unlessItypeHelp(&f.itype, minArgs(1, "an IMAGE")),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.itypeHelp(st.Out) {
				return nil
			}
			sp, err := f.spec()
			if err != nil {
				return err
			}
			rt, err := newRuntime()
			if err != nil {
				return err
			}
			return ephemeral.RunSSH(cmd.Context(), rt, ephemeral.Options{
				Config: vm.Config{
					Image: args[0], Spec: sp, RunnerImage: g.runnerImage, Version: version.Version, Warm: f.warm,
					HostStorage: f.storage,
				},
				ReadyTimeout: f.readyTimeout, Command: commandAfter(args[1:]),
				Progress: g.progressMode(st.Err), Pull: f.pullOpts(),
			}, st.vm())
		},
	}
	// Everything after IMAGE is the command, with or without "--".
	c.Flags().SetInterspersed(false)
	f.register(c.Flags())
	return c
}

// commandAfter drops the "--" that separates a command from bcvk's own
// arguments; flag parsing stops at IMAGE, so it arrives as an argument.
func commandAfter(args []string) []string {
	if len(args) > 0 && args[0] == "--" {
		return args[1:]
	}
	return args
}
