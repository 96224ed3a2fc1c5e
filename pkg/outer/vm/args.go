package vm

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/spec"
)

// ContainerConfig is everything `podman run` depends on.
type ContainerConfig struct {
	Name        string
	Image       string // the user's reference, for the label
	ImageID     string // what is mounted: an ID cannot change under us
	RunnerImage string
	// RunnerImageID is the runner image's ID, for the bcvk.runner-id label.
	RunnerImageID string
	StateDir      string
	// MemoryMiB is the guest's memory; the container's limit is derived.
	MemoryMiB   int
	Version     string
	KVM         bool // pass /dev/kvm
	VhostVsock  bool // pass /dev/vhost-vsock (the kernel's vsock backend)
	NoFile      uint64
	NProc       uint64
	StopTimeout int // seconds
	Labels      map[string]string
	Remove      bool // --rm: podman removes the container when the VM ends
	Binds       []spec.Bind
	// DisksDir is a host directory for the VM's disk images (to-disk).
	DisksDir string
	// Owner is the bcvk.owner label (see ownerOf), or empty.
	Owner string
	// Warm is the saved-VM directory to mount, if any.
	Warm *warmPlan
	// HostStorageDir is the host's container storage (its graph root), to
	// share read-only with the guest; empty shares nothing.
	HostStorageDir string
	// ErofsDir is the host's EROFS cache, mounted read-write for
	// bcvk-inner to build and evict in; empty mounts nothing.
	ErofsDir string
	// SSHUser is the guest user for SSH (label bcvk.ssh-user), if not root.
	SSHUser string
	// JournalFile is the host file that gets a copy of the guest's
	// journal (--journal), mounted at spec.JournalMount; empty mounts
	// nothing.
	JournalFile string
	// NoNetwork gives the container no network of its own: SSH still works
	// (it goes through podman exec to QEMU's loopback forward), but the
	// guest cannot reach out. For rootless hosts where slirp4netns cannot
	// open /dev/net/tun.
	NoNetwork bool
	// Publish are the guest ports to publish on the host.
	Publish []spec.Publish
	// AttachedDisks are the user's disk files to mount (--mount-disk-file).
	AttachedDisks []spec.AttachedDisk
}

// Limits of the runner container, so that a runaway guest, QEMU or
// virtiofsd cannot take the host down with it.
const (
	// runTmpfsMiB bounds /run, which holds the boot initramfs bcvk-inner
	// builds (its own binary and a few kernel modules: about 5 MiB) and
	// the sockets of QEMU and virtiofsd.
	runTmpfsMiB = 128
	// pidsLimit bounds processes and threads: QEMU needs one thread per
	// vCPU (at most 255) and a worker pool of up to 64, virtiofsd a few per
	// share, and every SSH session (`podman exec`) a handful more.
	pidsLimit = 4096
	// minOverheadMiB is the least room for everything but the guest's RAM:
	// QEMU (its TCG translation cache alone is 256 MiB; a 2 GiB guest
	// peaked at about 600 MiB in all), virtiofsd (about 64 MiB),
	// bcvk-inner and SSH sessions.
	minOverheadMiB = 1024
)

// ContainerMemoryMiB is the runner container's memory limit for a guest
// with guestMiB: the guest's RAM is a memfd that the container's cgroup
// pays for, and the rest of QEMU grows with it (page tables, device
// state). The /run tmpfs counts too.
func ContainerMemoryMiB(guestMiB int) int {
	return guestMiB + max(minOverheadMiB, guestMiB/4) + runTmpfsMiB
}

// PodmanRunArgs returns the `podman run` argument list (without "podman"),
// or an error when a value cannot be passed to podman safely.
func PodmanRunArgs(c ContainerConfig) ([]string, error) {
	// The runner image is the one positional argument after the options: a
	// reference beginning with "-" would be read as an option.
	if c.RunnerImage == "" || strings.HasPrefix(c.RunnerImage, "-") {
		return nil, fmt.Errorf("runner image %q: give an image reference (it cannot begin with \"-\")", c.RunnerImage)
	}
	errs := []error{podman.CheckMountPath("the VM state directory", c.StateDir)}
	for _, b := range c.Binds {
		errs = append(errs, podman.CheckMountPath("bind source", b.Host))
	}
	if c.DisksDir != "" {
		errs = append(errs, podman.CheckMountPath("the disk work directory", c.DisksDir))
	}
	if c.Warm != nil {
		errs = append(errs, podman.CheckMountPath("the saved-VM directory", c.Warm.dir))
	}
	if c.HostStorageDir != "" {
		errs = append(errs, podman.CheckMountPath("the host's container storage", c.HostStorageDir))
	}
	if c.ErofsDir != "" {
		errs = append(errs, podman.CheckMountPath("the EROFS cache", c.ErofsDir))
	}
	for _, d := range c.AttachedDisks {
		errs = append(errs, podman.CheckMountPath("disk file", d.Host))
	}
	if len(c.Publish) > 0 && c.NoNetwork {
		errs = append(errs, errors.New("the VM's container gets no network here, so no port can be published: leave out -p"))
	}
	if c.JournalFile != "" {
		errs = append(errs, podman.CheckMountPath("the journal file", c.JournalFile))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	a := []string{"run", "--detach"}
	if c.Remove {
		a = append(a, "--rm")
	}
	a = append(a,
		"--name", c.Name,
		"--label", spec.LabelEphemeral+"=1",
		"--label", spec.LabelName+"="+c.Name,
		"--label", spec.LabelImage+"="+c.Image,
		"--label", spec.LabelVersion+"="+c.Version,
		"--label", spec.LabelStateDir+"="+c.StateDir,
		"--label", spec.LabelRunnerID+"="+c.RunnerImageID,
	)
	if c.Owner != "" {
		a = append(a, "--label", spec.LabelOwner+"="+c.Owner)
	}
	if c.SSHUser != "" {
		a = append(a, "--label", spec.LabelSSHUser+"="+c.SSHUser)
	}
	if len(c.Publish) > 0 {
		a = append(a, "--label", spec.LabelPublish+"="+spec.FormatPublishLabel(c.Publish))
	}
	for _, k := range sortedKeys(c.Labels) {
		a = append(a, "--label", k+"="+c.Labels[k])
	}
	a = append(a,
		"--pull=never",
		"--mount", podman.MountArg("type=image", "source="+c.ImageID, "destination="+spec.ImageRoot),
		"--mount", bindMount(c.StateDir, spec.StateDir, false),
	)
	for i, b := range c.Binds {
		a = append(a, "--mount", bindMount(b.Host, spec.BindSource(i), b.ReadOnly))
	}
	if c.DisksDir != "" {
		a = append(a, "--mount", bindMount(c.DisksDir, spec.DisksDir, false))
	}
	for i, d := range c.AttachedDisks {
		a = append(a, "--mount", bindMount(d.Host, spec.AttachedDiskPath(i), d.ReadOnly))
	}
	if c.Warm != nil {
		a = append(a, "--mount", bindMount(c.Warm.dir, spec.WarmDir, c.Warm.readOnly))
	}
	if c.ErofsDir != "" {
		a = append(a, "--mount", bindMount(c.ErofsDir, spec.ErofsDir, false))
	}
	if c.JournalFile != "" {
		a = append(a, "--mount", bindMount(c.JournalFile, spec.JournalMount, false))
	}
	if c.HostStorageDir != "" {
		// Not recursive: the live root file systems of running containers
		// are mounted below it, and the guest has no business there.
		a = append(a, "--mount", podman.MountArg("type=bind", "source="+c.HostStorageDir, "destination="+spec.HostStorageDir,
			"ro=true", "bind-nonrecursive=true"))
	}
	if c.MemoryMiB > 0 {
		// Swap as large as memory: no swap, so a guest that outgrows its
		// limit is stopped rather than slowing the host down.
		mem := strconv.Itoa(ContainerMemoryMiB(c.MemoryMiB)) + "m"
		a = append(a, "--memory", mem, "--memory-swap", mem)
	}
	a = append(a,
		"--pids-limit", strconv.Itoa(pidsLimit),
		"--tmpfs", "/run:rw,mode=0755,size="+strconv.Itoa(runTmpfsMiB)+"m",
		// virtiofsd holds a descriptor per open guest file: podman's default
		// of 1024 freezes the guest's boot. Values the host allows us.
		"--ulimit", "nofile="+strconv.FormatUint(c.NoFile, 10)+":"+strconv.FormatUint(c.NoFile, 10),
		"--ulimit", "nproc="+strconv.FormatUint(c.NProc, 10)+":"+strconv.FormatUint(c.NProc, 10),
		// Host labels would deny QEMU the image mount on SELinux hosts.
		"--security-opt", "label=disable",
		// Nothing in the runner gains privileges by exec (no setuid tools).
		"--security-opt", "no-new-privileges",
		// Of podman's default capabilities, the runner needs the file ones
		// (virtiofsd serves files as the guest's users), SETUID/SETGID
		// (virtiofsd switches credentials per request), SETPCAP (virtiofsd
		// drops what it does not need) and SETFCAP (file capabilities on
		// shares), and SYS_CHROOT (each virtiofsd chroots into its share).
		// These two it never uses:
		"--cap-drop", "KILL,NET_BIND_SERVICE",
		"--stop-timeout", strconv.Itoa(c.StopTimeout),
	)
	if c.KVM {
		a = append(a, "--device", "/dev/kvm")
	}
	if c.VhostVsock {
		a = append(a, "--device", "/dev/vhost-vsock")
	}
	if c.NoNetwork {
		a = append(a, "--network", "none")
	}
	for i, p := range c.Publish {
		a = append(a, "--publish", publishArg(p, spec.PublishContainerPort(i)))
	}
	return append(a, c.RunnerImage), nil
}

func bindMount(host, dest string, readOnly bool) string {
	f := []string{"type=bind", "source=" + host, "destination=" + dest}
	if readOnly {
		f = append(f, "ro=true")
	}
	return podman.MountArg(f...)
}

// ExecSSHArgs returns the `podman exec` argument list that runs ssh in the
// container: interactive gives the session a terminal.
func ExecSSHArgs(name string, interactive bool, sshArgs []string) []string {
	a := []string{"exec", "-i"}
	if interactive {
		a = append(a, "-t")
	}
	a = append(a, name, "ssh")
	if interactive {
		a = append(a, "-t")
	}
	return append(a, sshArgs...)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// StopTimeoutFor gives podman stop enough time for the guest's power-off.
func StopTimeoutFor(sp spec.Spec) int {
	return int(time.Duration(sp.ShutdownTimeout).Seconds()) + 10
}

// publishArg is podman's --publish value: IP:HOSTPORT:CONTAINERPORT/tcp.
func publishArg(p spec.Publish, containerPort int) string {
	ip := p.HostIP
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	return fmt.Sprintf("%s:%d:%d/%s", ip, p.HostPort, containerPort, p.Protocol)
}
