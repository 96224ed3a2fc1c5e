// Package hostcheck reports what the host offers bcvk and what it lacks,
// with a fix for each problem (`bcvk system check`).
package hostcheck

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/outer/vm"
	"github.com/bcvk/bcvk/pkg/units"
	"golang.org/x/sys/unix"
)

// Levels of a finding.
const (
	OK      = "ok"
	Info    = "info"    // absent, but bcvk works without it
	Warning = "warning" // works, slower or with less
	Error   = "error"   // bcvk cannot work until fixed
)

// Finding is one checked item.
type Finding struct {
	Item   string `json:"item"`
	Level  string `json:"level"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Podman is what the checks ask of podman.
type Podman interface {
	Info(ctx context.Context) (*podman.Info, error)
	InspectImage(ctx context.Context, ref string) (*podman.Image, error)
}

// Host is what the checks look at; tests replace parts of it.
type Host struct {
	Podman      Podman // nil: podman is not installed
	RunnerImage string
	// VM is the host as the VM runtime sees it: its devices, rlimits,
	// state directories and KVM verdict.
	VM          vm.Host
	VsockDevice string
	MemInfo     string
}

// DefaultHost is this machine; pc is nil when podman is not installed.
func DefaultHost(pc *podman.Client, runner string) Host {
	h := Host{RunnerImage: runner, VM: vm.CurrentHost(), VsockDevice: "/dev/vhost-vsock", MemInfo: "/proc/meminfo"}
	if pc != nil {
		h.Podman = pc
	}
	return h
}

// MinFreeBytes below which a directory bcvk writes to gets a warning.
const MinFreeBytes = 2 << 30

// Run checks everything and returns the findings in a fixed order.
func Run(ctx context.Context, h Host) []Finding {
	var fs []Finding
	add := func(item, level, detail, fix string) {
		fs = append(fs, Finding{Item: item, Level: level, Detail: detail, Fix: fix})
	}
	var info *podman.Info
	if h.Podman == nil {
		add("podman", Error, "not installed", "install podman and runc (Debian: apt-get install podman runc, or run hack/install-host-deps.sh as root)")
	} else if i, err := h.Podman.Info(ctx); err != nil {
		add("podman", Error, firstLine(err.Error()), "run `podman info` to see what is wrong; on Debian 12 hack/install-host-deps.sh writes a working containers.conf")
	} else {
		info = i
		mode := "rootful"
		if i.Host.Security.Rootless {
			mode = "rootless"
		}
		add("podman", OK, fmt.Sprintf("%s, %s, cgroup %s", i.Version.Version, mode, i.Host.CgroupVersion), "")
		rt := i.Host.OCIRuntime.Name + " " + strings.TrimPrefix(firstLine(i.Host.OCIRuntime.Version), i.Host.OCIRuntime.Name+" version ")
		if i.Host.OCIRuntime.Name == "crun" && i.Host.CgroupVersion == "v1" {
			add("runtime", Warning, rt+" on cgroup v1 (crun fails on hybrid cgroup hosts)", `set runtime = "runc" under [engine] in containers.conf`)
		} else {
			add("runtime", OK, rt, "")
		}
		img, err := h.Podman.InspectImage(ctx, h.RunnerImage)
		switch {
		case errors.Is(err, podman.ErrNoImage):
			add("runner image", Error, h.RunnerImage+" is not present in local storage", "build it with `make runner-image` in the bcvk source tree, load it with `podman load -i bcvk-runner.oci.tar` (from `make runner-archive`), or pass --runner-image")
		case err != nil:
			add("runner image", Error, h.RunnerImage+": "+firstLine(err.Error()), "run `podman image inspect "+h.RunnerImage+"` to see what is wrong")
		default:
			add("runner image", OK, h.RunnerImage+", ID "+img.ID, "")
		}
	}

	nofile, nproc := h.VM.NoFile, h.VM.NProc
	// virtiofsd keeps a descriptor per image file the guest has looked up
	// and caches; a few dozen go to sockets and shares.
	files := fmt.Sprintf("nofile %d given to each VM container: virtiofsd can serve about %d image files cached at once (a walk of a bigger image makes bcvk ask the guest to drop its caches, and warns)", nofile, max(int64(nofile)-640, 0))
	if nofile < 65536 {
		add("ulimits", Warning, files, "raise the hard limit (limits.conf or systemd LimitNOFILE=) to 1048576, or run as root (bcvk then gives VMs fs.nr_open); fedora-bootc and centos-bootc images hold 60-100k files")
	} else {
		add("ulimits", OK, files+fmt.Sprintf("; nproc %d", nproc), "")
	}

	switch err := unix.Access(h.VM.KVMDevice, unix.R_OK|unix.W_OK); {
	case err == nil:
		if _, failed := h.VM.KVMVerdict(); failed {
			add("kvm", Warning, h.VM.KVMDevice+" is there, but KVM failed in a VM earlier in this host boot, so VMs use TCG software emulation (remembered until reboot)", "nested KVM often fails like this; run on bare metal or fix nested virtualisation in the hypervisor")
		} else {
			add("kvm", OK, h.VM.KVMDevice+" usable (bcvk watches the first boot and falls back to TCG if it fails)", "")
		}
	case os.IsNotExist(err):
		add("kvm", Warning, "no "+h.VM.KVMDevice+": VMs use TCG software emulation, several times slower", "load kvm_intel or kvm_amd, or enable virtualisation in the firmware or hypervisor")
	default:
		add("kvm", Warning, h.VM.KVMDevice+" is not accessible to you: "+err.Error(), "add yourself to the kvm group (usermod -aG kvm USER) and log in again")
	}

	if err := unix.Access(h.VsockDevice, unix.R_OK|unix.W_OK); err == nil {
		add("vsock", OK, "kernel backend: "+h.VsockDevice+" is passed to VM containers (vhost-vsock-pci, a CID allocated per VM by the kernel); SSH goes over vsock where the image's systemd is 256 or later", "")
	} else {
		add("vsock", OK, "userspace backend: no usable "+h.VsockDevice+", so the runner's vhost-device-vsock serves each VM (vhost-user-vsock-pci); SSH goes over vsock where the image's systemd is 256 or later, and warm starts use TCP (QEMU cannot save that device)", "")
	}

	if h.VM.EUID != 0 {
		if err := unix.Access(h.VM.TunDevice, unix.R_OK|unix.W_OK); err != nil {
			add("network", Warning, h.VM.TunDevice+" is not usable by you, so rootless VM containers get no network (SSH still works)", "as root: chmod 0666 "+h.VM.TunDevice)
		} else {
			add("network", OK, h.VM.TunDevice+" usable", "")
		}
	}

	dirs := []struct{ what, path string }{}
	if base, err := h.VM.StateBase(); err == nil {
		dirs = append(dirs, struct{ what, path string }{"VM state", base})
	} else {
		add("state directory", Error, err.Error(), "")
	}
	if info != nil && info.Store.GraphRoot != "" {
		dirs = append(dirs, struct{ what, path string }{"container storage", info.Store.GraphRoot})
	}
	for _, d := range dirs {
		var st unix.Statfs_t
		if err := unix.Statfs(d.path, &st); err != nil {
			continue
		}
		free := int64(st.Bavail) * st.Bsize
		detail := fmt.Sprintf("%s: %s free in %s", d.what, units.BytesSize(free), d.path)
		if free < MinFreeBytes {
			add("disk space", Warning, detail, "free some space (podman system prune, old disk images)")
		} else {
			add("disk space", OK, detail, "")
		}
	}

	if avail, ok := memAvailable(h.MemInfo); ok {
		detail := fmt.Sprintf("%s available (a VM takes --memory, 2 GiB by default)", units.BytesSize(avail))
		if avail < 5<<29 {
			add("memory", Warning, detail, "give VMs less with --memory, or free memory")
		} else {
			add("memory", OK, detail, "")
		}
	}
	return fs
}

// Failed reports whether any finding is an error.
func Failed(fs []Finding) bool {
	for _, f := range fs {
		if f.Level == Error {
			return true
		}
	}
	return false
}

func memAvailable(path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
