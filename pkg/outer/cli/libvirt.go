package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bcvk/bcvk/pkg/command"
	"github.com/bcvk/bcvk/pkg/outer/libvirt/conn"
	"github.com/bcvk/bcvk/pkg/outer/libvirt/domain"
	"github.com/bcvk/bcvk/pkg/outer/libvirt/storage"
	"github.com/bcvk/bcvk/pkg/outer/libvirt/vms"
	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/outer/progress"
	"github.com/bcvk/bcvk/pkg/outer/todisk"
	"github.com/bcvk/bcvk/pkg/outer/vm"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/sshclient"
	"github.com/bcvk/bcvk/pkg/storageconf"
	"github.com/bcvk/bcvk/pkg/units"
	"github.com/bcvk/bcvk/pkg/version"
	"github.com/spf13/cobra"
)

// libvirtGlobals are the flags of every `bcvk libvirt` command.
type libvirtGlobals struct {
	*globals
	connect string
	pool    string
}

// open connects and returns the manager; close it when done.
func (lg *libvirtGlobals) open(ctx context.Context) (*vms.Manager, error) {
	u, err := conn.DefaultURI(lg.connect, os.Getenv)
	if err != nil {
		return nil, usageError{err}
	}
	if err := storage.ValidPool(lg.pool); err != nil {
		return nil, usageError{fmt.Errorf("--pool: %w", err)}
	}
	c, err := conn.Open(ctx, u, conn.Options{})
	if err != nil {
		return nil, err
	}
	keys, err := vms.DefaultKeyDir()
	if err != nil {
		c.Close()
		return nil, err
	}
	dir := storage.PoolDir(lg.pool)
	if u.Mode == conn.ModeSession {
		// libvirt's own place for a session's images.
		if h, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(h, ".local", "share", "libvirt", "images", lg.pool)
		}
	}
	return &vms.Manager{C: c, Store: &storage.Store{L: c.L(), Pool: lg.pool, Dir: dir}, Keys: keys}, nil
}

// with connects, runs f, and disconnects.
func (lg *libvirtGlobals) with(ctx context.Context, f func(m *vms.Manager) error) error {
	m, err := lg.open(ctx)
	if err != nil {
		return err
	}
	defer m.C.Close()
	return f(m)
}

// withVM is with for one of bcvk's VMs, by name.
func (lg *libvirtGlobals) withVM(ctx context.Context, name string, f func(m *vms.Manager, v vms.VM) error) error {
	return lg.with(ctx, func(m *vms.Manager) error {
		v, err := m.Get(name)
		if err != nil {
			return err
		}
		return f(m, v)
	})
}

func newLibvirtCommand(g *globals, st Streams) *cobra.Command {
	lg := &libvirtGlobals{globals: g}
	c := &cobra.Command{
		Use:   "libvirt",
		Short: "Persistent VMs of bootc images on libvirt, on this host or a remote one",
		Long: `Persistent VMs on libvirt. Each image gets a base disk, made once by bcvk's
to-disk per image digest and install options and uploaded into a libvirt
storage pool through libvirt's stream API; each VM gets a copy-on-write qcow2
clone of it, so a second VM of the same image starts in seconds. VMs carry
bcvk's metadata in their domain XML; domains bcvk did not make are never
touched. The VM's SSH key stays on this machine.

--connect (or LIBVIRT_DEFAULT_URI) takes qemu:///system, qemu:///session,
qemu+tcp://HOST[:PORT]/system and qemu+ssh://[USER@]HOST[:PORT]/system
(query parameters: keyfile=, known_hosts=, no_verify=1, socket=).`,
		Example: `  bcvk libvirt run --name dev localhost/bcvk-sample-bootc:latest
  bcvk libvirt ssh dev -- systemctl is-system-running
  bcvk libvirt --connect qemu+ssh://root@server/system run --ssh localhost/my-bootc -- uname -a
  bcvk libvirt list --json`,
	}
	pf := c.PersistentFlags()
	pf.StringVarP(&lg.connect, "connect", "c", "", "libvirt URI (default: $LIBVIRT_DEFAULT_URI, else qemu:///system)")
	pf.StringVar(&lg.pool, "pool", storage.DefaultPool, "libvirt storage pool for base disks and clones (made by run when its first base disk goes in)")
	c.AddCommand(withConfig(newLibvirtRunCommand(lg, st), "memory", "vcpus", "accel", "runner-image"), newLibvirtListCommand(lg, st), newLibvirtInspectCommand(lg, st),
		newLibvirtSSHCommand(lg, st), newLibvirtStartCommand(lg, st), newLibvirtStopCommand(lg, st),
		newLibvirtRmCommand(lg, st), newLibvirtRmAllCommand(lg, st), newLibvirtBaseDisksCommand(lg, st),
		newLibvirtProxyCommand(lg, st))
	return c
}

type libvirtRunFlags struct {
	name, memory, itype, diskSize, filesystem, rootSize, firmware, accel, network string
	vcpus                                                                         int
	kargs, ports, binds, roBinds, labels, diskFiles                               []string
	swap                                                                          string
	ssh, replace, bindStorage                                                     bool
	timeout, installTimeout                                                       time.Duration
	pull                                                                          string
}

func newLibvirtRunCommand(lg *libvirtGlobals, st Streams) *cobra.Command {
	var f libvirtRunFlags
	c := &cobra.Command{
		Use:   "run IMAGE [--ssh [-- COMMAND...]]",
		Short: "Make and start a persistent VM of IMAGE",
		Long: `Make and start a persistent VM of IMAGE. The image's base disk is made first
when the pool has none for its digest and these install options (--disk-size,
--filesystem, --root-size, --karg; BIOS and UEFI VMs share it). With --ssh, bcvk waits for the
VM's sshd and opens a shell, or runs COMMAND and exits with its status.`,
		Example: `  bcvk libvirt run --name web --port 8080:80 --bind ./site:/srv/site localhost/my-bootc
  bcvk libvirt run --ssh localhost/my-bootc -- systemctl is-system-running

  # 8 GiB of memory from the type, 4 vCPUs by --vcpus (it wins); bcvk libvirt run --itype help lists the types
  bcvk libvirt run --name big --itype u1.large --vcpus 4 localhost/my-bootc
  # a disk file of this machine (the guest's /dev/disk/by-id/virtio-data, read-only) and 2G of swap
  bcvk libvirt run --name db --mount-disk-file /srv/disks/data.img:data:raw:ro --add-swap 2G localhost/my-bootc`,
		Args: unlessItypeHelp(&f.itype, func(cmd *cobra.Command, args []string) error {
			n := len(args)
			if d := cmd.ArgsLenAtDash(); d >= 0 {
				n = d
			}
			if n != 1 {
				return usageError{fmt.Errorf("give exactly one IMAGE (and a COMMAND after --)")}
			}
			return nil
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			if itypeHelp(f.itype, st.Out) {
				return nil
			}
			var remote []string
			if d := cmd.ArgsLenAtDash(); d >= 0 {
				remote = args[d:]
			}
			if len(remote) > 0 && !f.ssh {
				return usageError{errors.New("a COMMAND after -- needs --ssh")}
			}
			return libvirtRun(cmd.Context(), lg, st, f, args[0], remote)
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.name, "name", "", "the VM's (domain's) name (default: from the image, with a random suffix)")
	fs.StringVar(&f.memory, "memory", "", "memory: 4G, 2048M or MiB (default 2G, or the --itype's)")
	fs.IntVar(&f.vcpus, "vcpus", 0, "vCPUs (default 2, or the --itype's)")
	fs.StringVar(&f.itype, "itype", "", "instance type: vCPUs and memory by name, as KubeVirt's u1 series (u1.small, u1.medium, u1.large, ...); --memory and --vcpus win; --itype help lists them")
	fs.StringVar(&f.diskSize, "disk-size", "", "disk size, e.g. 20G (default: twice the image, at least 4G)")
	fs.StringVar(&f.filesystem, "filesystem", "", "root file system for bootc install (ext4, xfs, btrfs)")
	fs.StringVar(&f.rootSize, "root-size", "", "root partition size for bootc install")
	fs.StringArrayVar(&f.kargs, "karg", nil, "kernel argument of the installed system (repeatable)")
	fs.StringVar(&f.firmware, "firmware", "bios", "firmware: bios or uefi")
	fs.StringVar(&f.accel, "accel", spec.AccelAuto, "accelerator: auto (KVM if the libvirt host offers it and it is not known broken here), kvm or tcg")
	fs.StringVar(&f.network, "network", "user", "guest network: user (QEMU's user networking with port forwards) or passt (libvirt's passt backend; needs a recent passt on the libvirt host)")
	fs.StringArrayVarP(&f.ports, "port", "p", nil, "forward HOST:GUEST (TCP) on the libvirt host's loopback (repeatable)")
	fs.StringArrayVar(&f.binds, "bind", nil, "share HOST_DIR:GUEST_DIR read-write with virtiofs (HOST_DIR on the libvirt host; repeatable)")
	fs.StringArrayVar(&f.roBinds, "ro-bind", nil, "share HOST_DIR:GUEST_DIR read-only (repeatable)")
	fs.StringArrayVar(&f.diskFiles, "mount-disk-file", nil, "attach a raw or qcow2 file of this machine as a virtio disk: FILE[:NAME[:FORMAT]][:ro]; the guest sees /dev/disk/by-id/virtio-NAME (NAME defaults to the file name without extension; repeatable). The libvirt host must be this machine; libvirt gives the file to its QEMU user while the VM runs (docs/libvirt.md); rm leaves the file")
	fs.StringVar(&f.swap, "add-swap", "", "give the VM a swap disk of this size (e.g. 1G): a sparse volume bcvk-swap-NAME.img in the pool, removed with the VM; needs systemd 254 or later in the guest")
	fs.StringArrayVar(&f.labels, "label", nil, "label KEY=VALUE kept in the VM's metadata (repeatable)")
	fs.BoolVar(&f.bindStorage, "bind-storage-ro", false, "share this host's container storage read-only with the guest's podman (at "+vms.HostStorageDir+"; the libvirt host must be this machine; root only)")
	fs.BoolVar(&f.ssh, "ssh", false, "wait for SSH, then open a shell or run the COMMAND after --")
	fs.BoolVar(&f.replace, "replace", false, "remove a bcvk VM of the same name first")
	fs.DurationVar(&f.timeout, "timeout", vms.DefaultSSHTimeout, "how long --ssh waits for the VM's sshd")
	fs.DurationVar(&f.installTimeout, "install-timeout", todisk.DefaultInstallTimeout, "how long making the base disk may take")
	fs.StringVar(&f.pull, "pull", "missing", "pull the image: missing, always or never")
	return c
}

// parsePortMap parses HOST:GUEST.
func parsePortMap(s string) (vms.Port, error) {
	h, g, ok := strings.Cut(s, ":")
	hp, err1 := strconv.ParseUint(h, 10, 16)
	gp, err2 := strconv.ParseUint(g, 10, 16)
	if !ok || err1 != nil || err2 != nil || hp == 0 || gp == 0 {
		return vms.Port{}, usageError{fmt.Errorf("--port %q: use HOST_PORT:GUEST_PORT, e.g. 8080:80", s)}
	}
	return vms.Port{Host: uint16(hp), Guest: uint16(gp)}, nil
}

func parseLibvirtBind(s string, ro, remote bool) (vms.Bind, error) {
	flag := "--bind"
	if ro {
		flag = "--ro-bind"
	}
	h, g, ok := strings.Cut(s, ":")
	if !ok || h == "" || g == "" {
		return vms.Bind{}, usageError{fmt.Errorf("%s %q: use HOST_DIR:GUEST_DIR", flag, s)}
	}
	if !filepath.IsAbs(h) && remote {
		// The directory is on the libvirt host, not relative to us.
		return vms.Bind{}, usageError{fmt.Errorf("%s %q: give the directory on the remote libvirt host as an absolute path", flag, s)}
	}
	abs, err := filepath.Abs(h)
	if err != nil {
		return vms.Bind{}, err
	}
	return vms.Bind{Host: abs, Guest: g, ReadOnly: ro}, nil
}

func libvirtRun(ctx context.Context, lg *libvirtGlobals, st Streams, f libvirtRunFlags, image string, remote []string) (err error) {
	o := vms.RunOptions{Name: f.name, Accel: f.accel, Replace: f.replace, Version: version.Version, Progress: lg.progressMode(st.Err)}
	if o.MemoryMiB, o.VCPUs, err = libvirtSize(f); err != nil {
		return err
	}
	switch f.accel {
	case spec.AccelAuto, spec.AccelKVM, spec.AccelTCG:
	default:
		return usageError{fmt.Errorf("--accel %q: use auto, kvm or tcg", f.accel)}
	}
	switch f.network {
	case "user", "passt":
		o.Network = f.network
	default:
		return usageError{fmt.Errorf("--network %q: use user or passt", f.network)}
	}
	switch f.firmware {
	case "bios":
		o.Firmware = domain.FirmwareBIOS
	case "uefi":
		o.Firmware = domain.FirmwareUEFI
	default:
		return usageError{fmt.Errorf("--firmware %q: use bios or uefi", f.firmware)}
	}
	for _, p := range f.ports {
		pm, err := parsePortMap(p)
		if err != nil {
			return err
		}
		o.Ports = append(o.Ports, pm)
	}
	u, err := conn.DefaultURI(lg.connect, os.Getenv)
	if err != nil {
		return usageError{err}
	}
	remoteHost := !u.OnThisHost()
	for _, b := range f.binds {
		bb, err := parseLibvirtBind(b, false, remoteHost)
		if err != nil {
			return err
		}
		o.Binds = append(o.Binds, bb)
	}
	for _, b := range f.roBinds {
		bb, err := parseLibvirtBind(b, true, remoteHost)
		if err != nil {
			return err
		}
		o.Binds = append(o.Binds, bb)
	}
	if o.DiskFiles, o.SwapBytes, err = libvirtDisks(f, u); err != nil {
		return err
	}
	if o.Labels, err = parseLabels(f.labels); err != nil {
		return err
	}
	install := todisk.Install{Filesystem: f.filesystem, RootSize: strings.TrimSpace(f.rootSize), KernelArgs: f.kargs}
	if !hasKarg(install.KernelArgs, "console") {
		// The console log (virtlogd) and `virsh console` need it.
		install.KernelArgs = append([]string{"console=ttyS0"}, install.KernelArgs...)
	}
	if err := install.Validate(); err != nil {
		return usageError{err}
	}
	var size int64
	if f.diskSize != "" {
		if size, err = spec.ParseSize(f.diskSize, 1); err != nil || size < 1<<30 {
			return usageError{fmt.Errorf("--disk-size %q: give a size of at least 1G, e.g. 20G", f.diskSize)}
		}
	}
	if f.timeout <= 0 || f.installTimeout <= 0 {
		return usageError{errors.New("--timeout and --install-timeout must be positive, e.g. 10m")}
	}
	switch f.pull {
	case "missing", "always", "never":
	default:
		return usageError{fmt.Errorf("--pull %q: use missing, always or never", f.pull)}
	}

	rt, err := newRuntime()
	if err != nil {
		return err
	}
	status := progress.New(st.Err, o.Progress)
	defer func() { status.End(err == nil) }()
	status.Start("Checking podman and images")
	sp := spec.New()
	sp.Accel = f.accel
	pull := todiskPull(f.pull)
	img, err := rt.Preflight(ctx, image, lg.runnerImage, pull, status)
	if err != nil {
		return err
	}
	if img.Digest == "" {
		return fmt.Errorf("%s has no digest in podman's storage: bcvk names base disks by digest", image)
	}
	if size == 0 {
		size = todisk.DefaultSize(img.Size)
	}
	o.DiskSize = uint64(size)
	o.Base = storage.NewBaseKey(storage.BaseKey{
		Image: image, Digest: img.Digest, ImageID: img.ID, DiskSize: size, Filesystem: install.Filesystem,
		RootSize: install.RootSize, KernelArgs: install.KernelArgs,
	})
	if o.Name == "" {
		o.Name = defaultVMName(image)
	}
	if f.bindStorage {
		if remoteHost {
			return usageError{errors.New("--bind-storage-ro shares this machine's container storage: the libvirt host must be this machine")}
		}
		if o.Storage, err = hostStorage(ctx, img.ID); err != nil {
			return err
		}
	}
	o.MakeBase = func(ctx context.Context, dir string) (string, error) {
		disk := filepath.Join(dir, "base.qcow2")
		status.End(true)
		err := todisk.Run(ctx, rt, todisk.Options{
			Image: image, Disk: disk, Format: "qcow2", Size: size, Install: install, VM: sp,
			ReadyTimeout: 10 * time.Minute, InstallTimeout: f.installTimeout, RunnerImage: lg.runnerImage,
			Version: version.Version, Progress: o.Progress, Pull: pull,
		}, st.vm())
		return disk, err
	}

	m, err := lg.open(ctx)
	if err != nil {
		return err
	}
	defer m.C.Close()
	created, err := m.Run(ctx, o, status, st.Err)
	if err != nil {
		return err
	}
	v := created.VM
	// From here on the VM exists and stays, whatever happens.
	defer func() {
		if err != nil {
			err = &KeptError{Err: err, Name: v.Name, How: libvirtRmHint(lg, v.Name)}
		}
	}()
	fmt.Fprintf(st.Err, "Started %s on %s (clone made in %.1fs; SSH on the libvirt host's 127.0.0.1:%d)\n", v.Name, m.C.URI().String(), created.Clone.Seconds(), v.Meta.SSHPort)
	if !f.ssh {
		fmt.Fprintln(st.Out, v.Name)
		return nil
	}
	status.Start("Waiting for SSH in " + v.Name)
	if err := m.WaitSSH(ctx, v, f.timeout); err != nil {
		return err
	}
	status.End(true)
	return libvirtExecSSH(ctx, m, v, st, nil, remote)
}

// libvirtSize is the VM's memory and vCPUs: 2G and 2, or the --itype's;
// --memory and --vcpus win over both.
func libvirtSize(f libvirtRunFlags) (memMiB uint64, vcpus uint, err error) {
	memMiB, vcpus = 2048, 2
	if f.itype != "" {
		it, err := lookupItype(f.itype)
		if err != nil {
			return 0, 0, err
		}
		memMiB, vcpus = uint64(it.MemoryMiB), uint(it.VCPUs)
	}
	if f.memory != "" {
		m, err := spec.ParseMemoryMiB(f.memory)
		if err != nil {
			return 0, 0, usageError{fmt.Errorf("--memory: %w", err)}
		}
		memMiB = uint64(m)
	}
	if f.vcpus < 0 || f.vcpus > domain.MaxVCPUs {
		return 0, 0, usageError{fmt.Errorf("--vcpus %d: want 1 to %d", f.vcpus, domain.MaxVCPUs)}
	}
	if f.vcpus > 0 {
		vcpus = uint(f.vcpus)
	}
	return memMiB, vcpus, nil
}

// libvirtDisks checks --mount-disk-file and --add-swap as the ephemeral
// VMs do. Disk files are paths on this machine: the libvirt host must be it.
func libvirtDisks(f libvirtRunFlags, u conn.URI) ([]spec.AttachedDisk, int64, error) {
	if len(f.diskFiles) > 0 && !u.OnThisHost() {
		return nil, 0, usageError{fmt.Errorf("--mount-disk-file: the file must be on the libvirt host, and %s is not this machine: disk files on a remote libvirt host are not supported yet", u.String())}
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, 0, err
	}
	disks, err := parseDiskFiles(f.diskFiles, cwd)
	if err != nil {
		return nil, 0, usageError{err}
	}
	swapBytes, err := parseSwap(f.swap)
	if err != nil {
		return nil, 0, usageError{err}
	}
	for _, d := range disks {
		// rm finds the swap volume by this serial.
		if d.Serial == spec.SwapSerial {
			return nil, 0, usageError{fmt.Errorf("--mount-disk-file %s: the name %s is --add-swap's: give the file another NAME (FILE:NAME)", d.Host, spec.SwapSerial)}
		}
	}
	// The spec's checks: how many, and each NAME once.
	sp := spec.New()
	sp.AttachedDisks, sp.SwapBytes = disks, swapBytes
	if err := sp.Validate(); err != nil {
		return nil, 0, usageError{fmt.Errorf("--mount-disk-file: %w", err)}
	}
	return disks, swapBytes, nil
}

func hasKarg(kargs []string, key string) bool {
	for _, k := range kargs {
		if k == key || strings.HasPrefix(k, key+"=") {
			return true
		}
	}
	return false
}

func defaultVMName(image string) string {
	base := image
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	if i := strings.IndexAny(base, ":@"); i >= 0 {
		base = base[:i]
	}
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, base)
	clean = strings.Trim(clean, "-_.")
	if len(clean) > 40 {
		clean = clean[:40]
	}
	if clean == "" {
		clean = "vm"
	}
	suffix := strings.ToLower(strings.TrimLeft(vmsRandom(), "-"))
	return clean + "-" + suffix
}

// libvirtExecSSH runs ssh into v and passes its exit status through.
func libvirtExecSSH(ctx context.Context, m *vms.Manager, v vms.VM, st Streams, extra, remote []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv := append([]string{"ssh"}, m.SSHArgs(v, self, extra, remote)...)
	err = command.Run(ctx, command.Cmd{Argv: argv, Stdin: st.In, Stdout: st.Out, Stderr: st.Err})
	if code := command.ExitCode(err); code >= 0 {
		msg := ""
		if code == 255 {
			msg = fmt.Sprintf("ssh to %s failed (exit status 255): is it up? `bcvk libvirt list` shows its state", v.Name)
		}
		return &ExitError{Code: code, Message: msg}
	}
	return err
}

func newLibvirtListCommand(lg *libvirtGlobals, st Streams) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List bcvk's VMs on the libvirt host (others are not shown)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lg.with(cmd.Context(), func(m *vms.Manager) error {
				list, err := m.List()
				if err != nil {
					return err
				}
				self, _ := os.Executable()
				for i := range list {
					list[i].SSH.Command = libvirtSSHCommand(self, lg, list[i].Name)
				}
				if asJSON {
					if list == nil {
						list = []vms.VM{}
					}
					return writeJSON(st.Out, list)
				}
				tw := tabwriter.NewWriter(st.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATE\tIMAGE\tCREATED\tSSH")
				for _, v := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t127.0.0.1:%d\n", v.Name, v.State, v.Meta.Image,
						ago(v.Meta.Created), v.Meta.SSHPort)
				}
				return tw.Flush()
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func libvirtSSHCommand(self string, lg *libvirtGlobals, name string) []string {
	c := []string{self, "libvirt"}
	if lg.connect != "" {
		c = append(c, "--connect", lg.connect)
	}
	return append(c, "ssh", name)
}

func newLibvirtInspectCommand(lg *libvirtGlobals, st Streams) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show one VM: state, image, digest, install options, SSH",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lg.withVM(cmd.Context(), args[0], func(m *vms.Manager, v vms.VM) error {
				self, _ := os.Executable()
				v.SSH.Command = libvirtSSHCommand(self, lg, v.Name)
				if asJSON {
					return writeJSON(st.Out, v)
				}
				w := st.Out
				fmt.Fprintf(w, "Name:      %s\nUUID:      %s\nState:     %s\nImage:     %s\nDigest:    %s\nBase disk: %s\n",
					v.Name, v.UUID, v.State, v.Meta.Image, v.Meta.Digest, v.Meta.BaseDisk)
				fmt.Fprintf(w, "Created:   %s by bcvk %s\nSSH:       127.0.0.1:%d on the libvirt host, user %s, key %s\n",
					v.Meta.Created.Format(time.RFC3339), v.Meta.Version, v.Meta.SSHPort, v.SSH.User, v.SSH.KeyPath)
				in := v.Meta.Install
				fmt.Fprintf(w, "Install:   disk %s, filesystem %q, root size %q, kargs %q\n", units.BytesSize(in.DiskSize), in.Filesystem, in.RootSize, in.KernelArgs)
				for _, k := range sortedKeys(v.Meta.Labels) {
					fmt.Fprintf(w, "Label:     %s=%s\n", k, v.Meta.Labels[k])
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newLibvirtSSHCommand(lg *libvirtGlobals, st Streams) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "ssh NAME [SSH-OPTIONS...] [-- COMMAND...]",
		Short: "SSH into a VM (waits for its sshd; exit status passed through)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 || args[0] == "--" {
				return usageError{errors.New("give the NAME of a VM")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			// Parsing stops at NAME: what follows is ssh's options, then
			// "--" and the command, all kept verbatim.
			var extra, remote []string
			for i, a := range args[1:] {
				if a == "--" {
					remote = args[i+2:]
					break
				}
				extra = append(extra, a)
			}
			ctx := cmd.Context()
			return lg.withVM(ctx, args[0], func(m *vms.Manager, v vms.VM) error {
				if !v.Running() {
					return fmt.Errorf("%s is %s: start it first (bcvk libvirt start %s)", v.Name, v.State, v.Name)
				}
				if err := m.WaitSSH(ctx, v, timeout); err != nil {
					return err
				}
				return libvirtExecSSH(ctx, m, v, st, extra, remote)
			})
		},
	}
	c.Flags().SetInterspersed(false)
	c.Flags().DurationVar(&timeout, "timeout", vms.DefaultSSHTimeout, "how long to wait for the VM's sshd")
	return c
}

func newLibvirtStartCommand(lg *libvirtGlobals, st Streams) *cobra.Command {
	var ssh bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "start NAME",
		Short: "Start a stopped VM",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return lg.withVM(ctx, args[0], func(m *vms.Manager, v vms.VM) error {
				if err := m.Start(v); err != nil {
					return err
				}
				if ssh {
					if err := m.WaitSSH(ctx, v, timeout); err != nil {
						return err
					}
				}
				fmt.Fprintln(st.Out, v.Name)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&ssh, "wait-ssh", false, "return once the VM answers SSH")
	c.Flags().DurationVar(&timeout, "timeout", vms.DefaultSSHTimeout, "how long --wait-ssh waits")
	return c
}

func newLibvirtStopCommand(lg *libvirtGlobals, st Streams) *cobra.Command {
	var force bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "stop NAME",
		Short: "Power a VM off (ACPI power button; hard off after --timeout, or at once with -f)",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return lg.withVM(ctx, args[0], func(m *vms.Manager, v vms.VM) error {
				if err := m.Stop(ctx, v, force, timeout); err != nil {
					return err
				}
				fmt.Fprintln(st.Out, v.Name)
				return nil
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "pull the plug at once")
	c.Flags().DurationVar(&timeout, "timeout", vms.DefaultStopTimeout, "how long the guest may take to power off")
	return c
}

func newLibvirtRmCommand(lg *libvirtGlobals, st Streams) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "rm NAME...",
		Short: "Remove VMs: domain, disk clone and key (the base disk stays)",
		Args:  minArgs(1, "the NAME of at least one VM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return lg.with(ctx, func(m *vms.Manager) error {
				var errs []error
				for _, n := range args {
					v, err := m.Get(n)
					if errors.Is(err, vms.ErrNoVM) && force {
						continue
					}
					if err == nil {
						err = m.Remove(ctx, v, force)
					}
					if err != nil {
						errs = append(errs, err)
						continue
					}
					fmt.Fprintln(st.Out, n)
				}
				return errors.Join(errs...)
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "stop running VMs, and ignore VMs that do not exist")
	return c
}

func newLibvirtRmAllCommand(lg *libvirtGlobals, st Streams) *cobra.Command {
	var force bool
	var labels []string
	c := &cobra.Command{
		Use:   "rm-all",
		Short: "Remove every bcvk VM (with --label, those carrying it); running ones need -f",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			want, err := parseLabels(labels)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return lg.with(ctx, func(m *vms.Manager) error {
				list, err := m.List()
				if err != nil {
					return err
				}
				var errs []error
				for _, v := range list {
					if !hasLabels(v.Meta.Labels, want) {
						continue
					}
					if err := m.Remove(ctx, v, force); err != nil {
						errs = append(errs, err)
						continue
					}
					fmt.Fprintln(st.Out, v.Name)
				}
				return errors.Join(errs...)
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "also stop and remove running VMs")
	c.Flags().StringArrayVar(&labels, "label", nil, "only VMs with this KEY=VALUE label (repeatable: all must match)")
	return c
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func newLibvirtBaseDisksCommand(lg *libvirtGlobals, st Streams) *cobra.Command {
	c := &cobra.Command{Use: "base-disks", Short: "List or prune the base disks in the pool"}
	var asJSON, dryRun bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List base disks: image, digest, size and the VMs on each",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lg.with(cmd.Context(), func(m *vms.Manager) error {
				bs, err := m.Bases()
				if err != nil {
					return err
				}
				if asJSON {
					if bs == nil {
						bs = []vms.BaseUse{}
					}
					return writeJSON(st.Out, bs)
				}
				tw := tabwriter.NewWriter(st.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tIMAGE\tDIGEST\tSIZE\tVMS")
				for _, b := range bs {
					fmt.Fprintf(tw, "%s\t%s\t%.19s\t%s\t%s\n", b.Name, b.Key.Image, b.Key.Digest, units.BytesSize(int64(b.Allocated)), strings.Join(b.UsedBy, ","))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove the base disks no VM uses",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lg.with(cmd.Context(), func(m *vms.Manager) error {
				gone, err := m.Prune(dryRun)
				for _, n := range gone {
					fmt.Fprintln(st.Out, n)
				}
				return err
			})
		},
	}
	prune.Flags().BoolVar(&dryRun, "dry-run", false, "only print what would be removed")
	c.AddCommand(list, prune)
	return c
}

// newLibvirtProxyCommand is ssh's ProxyCommand: it connects stdin and stdout
// to a port on the libvirt host's loopback, through the URI's transport.
func newLibvirtProxyCommand(lg *libvirtGlobals, st Streams) *cobra.Command {
	return &cobra.Command{
		Use:         "proxy PORT",
		Short:       "Connect stdin/stdout to PORT on the libvirt host's loopback (ssh's ProxyCommand)",
		Hidden:      true,
		Annotations: map[string]string{quietSignals: "1"},
		Args:        exactArgs(1, "PORT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := strconv.ParseUint(args[0], 10, 16)
			if err != nil || p == 0 {
				return usageError{fmt.Errorf("PORT %q: want 1 to 65535", args[0])}
			}
			return lg.with(cmd.Context(), func(m *vms.Manager) error {
				return vms.Proxy(cmd.Context(), m.C, uint16(p), st.In, st.Out)
			})
		},
	}
}

func todiskPull(policy string) vm.PullOptions { return vm.PullOptions{Policy: policy, TLSVerify: true} }

// vmsRandom is a short random suffix for default names.
func vmsRandom() string { return strings.TrimPrefix(vm.RandomName(), "bcvk-")[:6] }

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

// KeptError is an error after a persistent VM was made: the VM stays, and
// the message on a signal says so instead of "everything was removed".
type KeptError struct {
	Err  error
	Name string
	How  string // the command that removes it
}

func (e *KeptError) Error() string { return e.Err.Error() }
func (e *KeptError) Unwrap() error { return e.Err }

func libvirtRmHint(lg *libvirtGlobals, name string) string {
	c := "bcvk libvirt"
	if lg.connect != "" {
		c += " --connect " + sshclient.Quote(lg.connect)
	}
	return c + " rm -f " + name
}

// hostStorage reads the image's storage.conf and adds this host's graph
// root (shared at vms.HostStorageDir) as an additional image store.
func hostStorage(ctx context.Context, imageID string) (*vms.HostStorage, error) {
	pc, err := podman.New()
	if err != nil {
		return nil, err
	}
	info, err := pc.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.Store.GraphRoot == "" || info.Host.Security.Rootless {
		return nil, errors.New("--bind-storage-ro: needs root's podman storage (podman info names no graph root, or podman is rootless)")
	}
	root, err := pc.MountImage(ctx, imageID)
	if err != nil {
		return nil, fmt.Errorf("--bind-storage-ro: reading the image's storage.conf: %w", err)
	}
	conf, err := storageconf.Read(root)
	if uerr := pc.UnmountImage(context.WithoutCancel(ctx), imageID); err == nil && uerr != nil {
		err = uerr
	}
	if err != nil {
		return nil, err
	}
	conf, err = storageconf.Merge(conf, vms.HostStorageDir, info.Store.GraphDriverName)
	if err != nil {
		return nil, fmt.Errorf("the image's storage.conf: %w", err)
	}
	b, err := storageconf.Encode(conf, "Written by bcvk at every boot: the host's container storage is an additional image store.")
	if err != nil {
		return nil, err
	}
	return &vms.HostStorage{GraphRoot: info.Store.GraphRoot, Conf: b}, nil
}
