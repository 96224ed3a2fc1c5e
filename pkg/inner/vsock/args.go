// Package vsock connects bcvk-inner to its guest over virtio-vsock, with
// either backend: the userspace vhost-device-vsock program (no
// /dev/vhost-vsock needed) or the kernel's vhost-vsock device.
//
// It builds the command lines for both, dials guest ports, listens for
// guest connections, allocates host-unique CIDs for the kernel backend and
// receives systemd's sd_notify messages sent over vsock.
package vsock

import (
	"fmt"
	"strings"
)

const (
	// HostCID is the address the guest uses to reach the host.
	HostCID = 2
	// GuestCID is the guest's address with the userspace backend. Every VM
	// has a backend of its own, so the CID cannot clash with another VM.
	GuestCID = 3
)

// BackendBinary is where Debian installs the userspace backend.
const BackendBinary = "/usr/bin/vhost-device-vsock"

// BackendConfig is what the vhost-device-vsock command line depends on.
type BackendConfig struct {
	// GuestCID defaults to GuestCID when zero.
	GuestCID uint32
	// Socket is the vhost-user socket QEMU connects to.
	Socket string
	// UDSPath is the unix socket the host dials for host→guest
	// connections; guest→host connections to port P arrive at UDSPath_P.
	UDSPath string
}

// BackendArgs returns the vhost-device-vsock argument list (without the
// binary).
func BackendArgs(c BackendConfig) []string {
	cid := c.GuestCID
	if cid == 0 {
		cid = GuestCID
	}
	return []string{
		fmt.Sprintf("--guest-cid=%d", cid),
		"--socket=" + c.Socket,
		"--uds-path=" + c.UDSPath,
		fmt.Sprintf("--tx-buffer-size=%d", TxBufferSize),
	}
}

// TxBufferSize is the backend's buffer per connection, which it also
// announces to the guest as its credit, so it bounds the guest's packets.
// Guest kernels since Linux 6.17 (and stable kernels that took the change,
// such as Debian's 6.12.117) send packets over 32 KiB as several
// descriptors, which vhost-device-vsock 0.3.0 corrupts (SSH then fails
// with "Bad packet length" after about 32 KiB: found by trying). Below
// that size every packet stays in one descriptor.
const TxBufferSize = 24 << 10

// chardevID names the chardev that joins QEMU to the userspace backend.
const chardevID = "vsock"

// UserDeviceArgs returns the QEMU arguments for a vsock device served by
// vhost-device-vsock on backendSocket. vhost-user also needs the guest RAM
// in shared memory (a memory backend with share=on).
func UserDeviceArgs(backendSocket string) []string {
	return []string{
		"-chardev", "socket,id=" + chardevID + ",path=" + qemuEscape(backendSocket),
		"-device", "vhost-user-vsock-pci,chardev=" + chardevID,
	}
}

// KernelDeviceArgs returns the QEMU arguments for a kernel vhost-vsock
// device whose CID was set on vhostfd by AllocateCID; QEMU inherits the fd.
func KernelDeviceArgs(cid uint32, vhostfd int) []string {
	return []string{
		"-device", fmt.Sprintf("vhost-vsock-pci,guest-cid=%d,vhostfd=%d", cid, vhostfd),
	}
}

// NotifyCredential is the system credential vmm.notify_socket: it makes
// systemd (254 or later) in the guest send its sd_notify messages to host
// port port. It is a credential, not a kernel argument (found by trying: as
// a kernel argument systemd ignores it).
const NotifyCredential = "vmm.notify_socket"

// NotifySocket is NotifyCredential's value for host port port.
func NotifySocket(port uint32) string {
	return fmt.Sprintf("vsock-stream:%d:%d", HostCID, port)
}

// qemuEscape doubles commas, which QEMU otherwise reads as the start of
// the next option.
func qemuEscape(s string) string {
	return strings.ReplaceAll(s, ",", ",,")
}
