// Package vm is the VM-container runtime that every bcvk command uses: it
// launches a runner container per VM, waits for its readiness, runs SSH in
// it, lists, prunes and removes VMs, and keeps their state directories,
// owner labels and the KVM verdict. It talks to podman through the Podman
// interface and learns about the machine from a Host, so tests fake both.
package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/bcvk/bcvk/pkg/outer/privdir"
	"golang.org/x/sys/unix"
)

// Host is what the runtime knows about the machine it runs on: its
// directories, devices, identity and environment. CurrentHost describes
// this machine; tests build their own.
type Host struct {
	// Getenv reads the environment (XDG_RUNTIME_DIR, XDG_CACHE_HOME, HOME).
	Getenv func(string) string
	// TempDir is where state goes when there is no XDG_RUNTIME_DIR.
	TempDir string
	// UID is the real user ID (owner of state directories), EUID the
	// effective one (names the fallback state base).
	UID, EUID int
	// PID is this process's, Proc the proc file system that describes it.
	PID  int
	Proc string
	// BootID identifies this boot of the host ("" when unknown).
	BootID string
	// PIDNamespace is the inode of our PID namespace ("" when unknown).
	PIDNamespace string
	// KVMDevice and TunDevice are the device nodes a VM may use.
	KVMDevice, TunDevice string
	// VhostVsockDevice is the kernel's vsock backend; without it the
	// runner uses its userspace one.
	VhostVsockDevice string
	// NoFile and NProc are the rlimits to give each VM container.
	NoFile, NProc uint64
}

// CurrentHost describes this machine and process.
func CurrentHost() Host {
	if os.Geteuid() == 0 {
		raiseNoFile(nrOpen("/proc"))
	}
	nofile, nproc := rlimits()
	// Test-only: force a low limit to see the descriptor watch work.
	if v, err := strconv.ParseUint(os.Getenv("BCVK_TEST_NOFILE"), 10, 64); err == nil && v > 0 {
		nofile = min(nofile, v)
	}
	return Host{
		Getenv: os.Getenv, TempDir: os.TempDir(), UID: os.Getuid(), EUID: os.Geteuid(),
		PID: os.Getpid(), Proc: "/proc", BootID: readBootID("/proc"), PIDNamespace: pidNamespace("/proc"),
		KVMDevice: "/dev/kvm", TunDevice: "/dev/net/tun", VhostVsockDevice: "/dev/vhost-vsock", NoFile: nofile, NProc: nproc,
	}
}

func (h Host) getenv(k string) string {
	if h.Getenv == nil {
		return ""
	}
	return h.Getenv(k)
}

func readBootID(proc string) string {
	b, err := os.ReadFile(filepath.Join(proc, "sys/kernel/random/boot_id"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// pidNamespace is the inode of our PID namespace, or "" when unknown.
func pidNamespace(proc string) string {
	l, err := os.Readlink(filepath.Join(proc, "self/ns/pid")) // "pid:[4026531836]"
	if err != nil || !strings.HasPrefix(l, "pid:[") || !strings.HasSuffix(l, "]") {
		return ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(l, "pid:["), "]")
}

// StateBase is the directory that holds every VM's state directory: in
// XDG_RUNTIME_DIR when there is one (private to the user, gone at logout),
// else a per-user directory in the temp dir. Every component is checked
// (see privdir): root with another user's XDG_RUNTIME_DIR (sudo -E) must
// not follow that user's symlinks.
func (h Host) StateBase() (string, error) {
	if d := h.getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			base, err := privdir.Ensure(d, "bcvk", 0o700)
			if err != nil {
				return "", fmt.Errorf("%w; bcvk looked there because of XDG_RUNTIME_DIR: unset it, or as root use sudo -i rather than sudo -E or su without -", err)
			}
			return base, nil
		}
	}
	base, err := privdir.Ensure(h.TempDir, fmt.Sprintf("bcvk-%d", h.EUID), 0o700)
	if err != nil {
		return "", fmt.Errorf("%w; or set XDG_RUNTIME_DIR to a private directory of yours", err)
	}
	return base, nil
}

// NewStateDir makes a private directory for one VM.
func (h Host) NewStateDir(name string) (string, error) {
	base, err := h.StateBase()
	if err != nil {
		return "", fmt.Errorf("making the VM state directory: %w", err)
	}
	return os.MkdirTemp(base, name+"-")
}

// rlimits returns the file and process limits to give the container: the
// host's hard file limit (virtiofsd needs many), and a process limit that
// runc can apply without CAP_SYS_RESOURCE.
// maxNoFile bounds what bcvk asks for, whatever fs.nr_open allows.
const maxNoFile = 1 << 20

// nrOpen is the kernel's per-process descriptor maximum (fs.nr_open),
// capped at maxNoFile; 0 when unknown.
func nrOpen(proc string) uint64 {
	b, err := os.ReadFile(filepath.Join(proc, "sys/fs/nr_open"))
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return min(n, maxNoFile)
}

// raiseNoFile lifts this process's hard descriptor limit to n where the
// host allows it (root with CAP_SYS_RESOURCE): podman and the OCI runtime
// inherit it, and can then give the VM's container that much. virtiofsd
// needs a descriptor per file the guest caches; big images have 100k+.
func raiseNoFile(n uint64) {
	var rl syscall.Rlimit
	if n == 0 || syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil || rl.Max >= n {
		return
	}
	// syscall (not x/sys/unix): Go then passes the new limit to children.
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: rl.Cur, Max: n})
}

func rlimits() (nofile, nproc uint64) {
	nofile, nproc = 1024, 4096
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Max != unix.RLIM_INFINITY {
		nofile = rl.Max
	} else if rl.Max == unix.RLIM_INFINITY {
		nofile = 1 << 20
	}
	if unix.Getrlimit(unix.RLIMIT_NPROC, &rl) == nil && rl.Max < nproc {
		nproc = rl.Max
	}
	return nofile, nproc
}

// usable reports whether this user may open the device: passing a device
// the user cannot open only makes podman fail.
func usable(dev string) bool {
	return dev != "" && unix.Access(dev, unix.R_OK|unix.W_OK) == nil
}
