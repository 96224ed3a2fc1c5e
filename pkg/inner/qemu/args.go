// Package qemu builds QEMU command lines (pure functions of a Config), picks
// the accelerator, and talks QMP.
package qemu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bcvk/bcvk/pkg/inner/vsock"
	"github.com/bcvk/bcvk/pkg/spec"
)

// Config is everything the QEMU command line depends on.
type Config struct {
	Binary     string
	Name       string
	Accel      string // "kvm" or "tcg"
	MemoryMiB  int
	VCPUs      int
	Kernel     string
	Initramfs  string
	KernelArgs []string
	// VirtiofsSocket is virtiofsd's vhost-user socket for the root share.
	VirtiofsSocket string
	RootTag        string
	// RootDisk, when set, is an EROFS image of the root, attached
	// read-only as a virtio disk with serial RootDiskSerial instead of
	// the root share.
	RootDisk       string
	RootDiskSerial string
	// SSHForwardPort is the port on the container's loopback that QEMU
	// forwards to the guest's port 22.
	SSHForwardPort int
	// NetProbePort is forwarded to the guest's port 1 (nothing listens
	// there) to learn when the guest is on the network.
	NetProbePort int
	QMPSocket    string
	// SMBIOSCredentials are values for -smbios type=11 (see package credential).
	SMBIOSCredentials []string
	// Vsock, when set, adds a virtio-vsock device.
	Vsock *Vsock
	// NoNetwork leaves the network device out (--network none).
	NoNetwork bool
	// Shares are further virtiofs devices (host directories).
	Shares []Share
	// Drives are disk image files attached as virtio block devices.
	Drives []Drive
	// Forwards are published guest ports.
	Forwards []Forward
	// Incoming makes QEMU wait for a saved state (migrate-incoming).
	Incoming bool
	// HotplugPorts empty PCIe root ports take devices added while the VM
	// runs (a warm VM's shares); see HotplugPort.
	HotplugPorts int
}

// Vsock is the virtio-vsock device: the userspace backend's vhost-user
// socket, or the kernel's vhost-vsock with a CID allocated on an open
// /dev/vhost-vsock that QEMU inherits as VhostFD.
type Vsock struct {
	BackendSocket string
	CID           uint32
	VhostFD       int
}

// Drive is a disk image file.
type Drive struct {
	Path   string // no commas (QEMU's option syntax)
	Format string // raw or qcow2
	Serial string // the guest sees /dev/disk/by-id/virtio-SERIAL
	// ReadOnly opens the file read-only; the guest sees a read-only disk.
	ReadOnly bool
}

// Forward is a published port: QEMU listens on ContainerPort on all of
// the container's addresses (podman publishes it on the host) and forwards
// to the guest's GuestPort.
type Forward struct {
	ContainerPort int
	GuestPort     int
}

// Share is one more virtiofs device.
type Share struct {
	Tag    string
	Socket string
}

// DefaultBinary is the QEMU in the runner image.
const DefaultBinary = "qemu-system-x86_64"

// BaseKernelArgs come before the user's, so the user's win where the kernel
// takes the last value.
func BaseKernelArgs() []string {
	return []string{
		"console=ttyS0,115200n8",
		// bcvk's initramfs ignores root=; the image root is the virtiofs share.
		"selinux=0", // virtiofs does not carry SELinux labels here
		"panic=-1",  // a panic ends the VM (with -no-reboot) instead of hanging it
		// The kernel's check that the IO-APIC timer ticks fails when the
		// host starves the vCPU at that moment ("IO-APIC + timer doesn't
		// work!", a panic; seen with five TCG guests on two CPUs). The
		// timer is QEMU's and works; cloud images and Kata set it too.
		"no_timer_check",
	}
}

// Machine is q35 without the built-in devices a VM of ours never uses: each
// costs the guest a driver load and a probe at boot (SATA: libata, ahci and
// six link probes; SMBus: i2c_i801; PS/2: psmouse, serio_raw). Disks are
// virtio, the console is serial.
const Machine = "q35,sata=off,smbus=off,i8042=off,vmport=off"

// rootArgs attach the image root: the virtiofs share, or the EROFS disk.
func rootArgs(c Config) []string {
	if c.RootDisk != "" {
		// read-only on both sides: QEMU opens the file O_RDONLY, and the
		// guest sees a read-only disk. The page cache of the host serves
		// repeated reads (cache=writeback, the default, without writes).
		return []string{
			"-drive", "if=none,id=root,file=" + c.RootDisk + ",format=raw,readonly=on,cache=writeback",
			"-device", "virtio-blk-pci,drive=root,serial=" + c.RootDiskSerial,
		}
	}
	return []string{
		"-chardev", "socket,id=rootfs,path=" + c.VirtiofsSocket,
		"-device", "vhost-user-fs-pci,queue-size=1024,chardev=rootfs,tag=" + c.RootTag,
	}
}

// Args returns the argument list (without the binary).
func Args(c Config) []string {
	a := []string{
		"-name", "bcvk-" + c.Name + ",debug-threads=on",
		"-nodefaults", "-no-user-config", "-display", "none",
		// An ephemeral VM ends when its guest reboots or panics.
		"-no-reboot",
	}
	switch c.Accel {
	case "kvm":
		a = append(a, "-machine", Machine, "-accel", "kvm", "-cpu", "host")
	default:
		// tb-size caps the translation cache: less RSS, no measurable slowdown.
		// Without svm/vmx the guest loads no kvm modules (1.6 MB, signature
		// checked, under emulation): nested virtualization under TCG is of
		// no use anyway.
		a = append(a, "-machine", Machine, "-accel", "tcg,tb-size=256", "-cpu", "max,svm=off,vmx=off")
	}
	mem := strconv.Itoa(c.MemoryMiB) + "M"
	a = append(a,
		"-smp", strconv.Itoa(c.VCPUs),
		"-m", mem,
		// vhost-user-fs needs guest memory that virtiofsd can map.
		"-object", "memory-backend-memfd,id=mem,size="+mem+",share=on",
		"-numa", "node,memdev=mem",
		"-kernel", c.Kernel,
		"-initrd", c.Initramfs,
		"-append", strings.Join(c.KernelArgs, " "),
	)
	a = append(a, hotplugPortArgs(c.HotplugPorts)...)
	a = append(a, rootArgs(c)...)
	for _, sh := range c.Shares {
		a = append(a,
			"-chardev", "socket,id="+sh.Tag+",path="+sh.Socket,
			"-device", "vhost-user-fs-pci,queue-size=1024,chardev="+sh.Tag+",tag="+sh.Tag)
	}
	for i, d := range c.Drives {
		id := fmt.Sprintf("disk%d", i)
		// discard=unmap keeps a sparse file sparse when the guest trims;
		// werror=report hands a full host disk to the guest as an I/O
		// error instead of pausing the VM for ever.
		opts := "cache=writeback,discard=unmap,werror=report,rerror=report"
		if d.ReadOnly {
			opts = "readonly=on,cache=writeback,rerror=report"
		}
		a = append(a,
			"-drive", "if=none,id="+id+",file="+d.Path+",format="+d.Format+","+opts,
			"-device", "virtio-blk-pci,drive="+id+",serial="+d.Serial)
	}
	if !c.NoNetwork {
		a = append(a,
			"-netdev", netdev(c),
			// romfile= skips the iPXE ROM: nothing boots from the network.
			"-device", "virtio-net-pci,netdev=net0,romfile=")
	}
	a = append(a,
		"-device", "virtio-rng-pci",
		// A restored warm VM is a clone: the VM generation ID changes with
		// every QEMU start, and the guest kernel reseeds its RNG on it.
		"-device", "vmgenid,guid=auto",
		// The guest kernel reports a panic here and QEMU sends GUEST_PANICKED;
		// the guest goes on to print and end the panic itself (panic=-1 with
		// -no-reboot), so the console keeps the panic line.
		"-device", "pvpanic", "-action", "panic=none",
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
		"-qmp", "unix:"+c.QMPSocket+",server=on,wait=off",
	)
	if c.Incoming {
		a = append(a, "-incoming", "defer")
	}
	if v := c.Vsock; v != nil {
		if v.BackendSocket != "" {
			a = append(a, vsock.UserDeviceArgs(v.BackendSocket)...)
		} else {
			a = append(a, vsock.KernelDeviceArgs(v.CID, v.VhostFD)...)
		}
	}
	for _, v := range c.SMBIOSCredentials {
		// QEMU's option parser treats a comma as a separator; base64 has none.
		a = append(a, "-smbios", "type=11,value="+v)
	}
	return a
}

// netdev is the user network with its forwards: SSH and the probe on the
// container's loopback only, published ports on all its addresses (podman
// forwards to the container's address).
func netdev(c Config) string {
	s := fmt.Sprintf("user,id=net0,net=%s,hostfwd=tcp:127.0.0.1:%d-:22,hostfwd=tcp:127.0.0.1:%d-:1", spec.GuestNet, c.SSHForwardPort, c.NetProbePort)
	for _, f := range c.Forwards {
		s += fmt.Sprintf(",hostfwd=tcp::%d-:%d", f.ContainerPort, f.GuestPort)
	}
	return s
}
