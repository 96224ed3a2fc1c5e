package qemu

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

const kvmGetAPIVersion = 0xAE00 // _IO(KVMIO, 0x00)

// KVMUsable says whether /dev/kvm can be opened and answers the KVM API.
// It does not prove that a guest will run: nested KVM can accept every ioctl
// and still hang the guest, which is why the supervisor also watches the
// first boot under KVM and falls back to TCG when it stays silent.
func KVMUsable(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	v, err := unix.IoctlRetInt(int(f.Fd()), kvmGetAPIVersion)
	if err != nil {
		return fmt.Errorf("KVM_GET_API_VERSION: %w", err)
	}
	if v != 12 {
		return fmt.Errorf("unexpected KVM API version %d", v)
	}
	return nil
}
