// Package ephemeral starts ephemeral VMs: a runner container per VM, with
// the bootc image mounted read-only, and the VM inside it.
package ephemeral

import (
	"sort"
	"strconv"
	"time"

	"github.com/bcvk/bcvk/pkg/spec"
)

// ContainerConfig is everything `podman run` depends on.
type ContainerConfig struct {
	Name        string
	Image       string // the user's reference, for the label
	ImageID     string // what is mounted: an ID cannot change under us
	RunnerImage string
	StateDir    string
	Version     string
	KVM         bool // pass /dev/kvm
	NoFile      uint64
	NProc       uint64
	StopTimeout int // seconds
	Labels      map[string]string
	Remove      bool // --rm: podman removes the container when the VM ends
	Binds       []spec.Bind
	// DisksDir is a host directory for the VM's disk images (to-disk).
	DisksDir string
	// Owner is the bcvk.owner label: PID@BOOT-ID, or empty.
	Owner string
	// Warm is the saved-VM directory to mount, if any.
	Warm *warmPlan
	// NoNetwork gives the container no network of its own: SSH still works
	// (it goes through podman exec to QEMU's loopback forward), but the
	// guest cannot reach out. For rootless hosts where slirp4netns cannot
	// open /dev/net/tun.
	NoNetwork bool
}

// PodmanRunArgs returns the `podman run` argument list (without "podman").
func PodmanRunArgs(c ContainerConfig) []string {
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
	)
	if c.Owner != "" {
		a = append(a, "--label", spec.LabelOwner+"="+c.Owner)
	}
	for _, k := range sortedKeys(c.Labels) {
		a = append(a, "--label", k+"="+c.Labels[k])
	}
	a = append(a,
		"--pull=never",
		"--mount", "type=image,source="+c.ImageID+",destination="+spec.ImageRoot,
		"--mount", "type=bind,source="+c.StateDir+",destination="+spec.StateDir,
	)
	for i, b := range c.Binds {
		m := "type=bind,source=" + b.Host + ",destination=" + spec.BindSource(i)
		if b.ReadOnly {
			m += ",ro=true"
		}
		a = append(a, "--mount", m)
	}
	if c.DisksDir != "" {
		a = append(a, "--mount", "type=bind,source="+c.DisksDir+",destination="+spec.DisksDir)
	}
	if c.Warm != nil {
		m := "type=bind,source=" + c.Warm.dir + ",destination=" + spec.WarmDir
		if c.Warm.readOnly {
			m += ",ro=true"
		}
		a = append(a, "--mount", m)
	}
	a = append(a,
		"--tmpfs", "/run:rw,mode=0755",
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
		// shares). These three it never uses:
		"--cap-drop", "KILL,NET_BIND_SERVICE,SYS_CHROOT",
		"--stop-timeout", strconv.Itoa(c.StopTimeout),
	)
	if c.KVM {
		a = append(a, "--device", "/dev/kvm")
	}
	if c.NoNetwork {
		a = append(a, "--network", "none")
	}
	return append(a, c.RunnerImage)
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
