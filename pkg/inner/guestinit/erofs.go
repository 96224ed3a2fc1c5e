package guestinit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// sysBlock is where the kernel lists block devices; there is no udev in
// bcvk's initramfs, so no /dev/disk/by-id.
const sysBlock = "/sys/block"

// maxSerial bounds what is read of a serial attribute (virtio: 20 bytes).
const maxSerial = 256

// findDiskBySerial returns the name (vda, ...) of the block device in
// sysBlockDir whose serial attribute is serial.
func findDiskBySerial(sysBlockDir, serial string) (string, error) {
	entries, err := os.ReadDir(sysBlockDir)
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		f, err := os.Open(filepath.Join(sysBlockDir, n, "serial"))
		if err != nil {
			continue // not every block device has one (loop, ram)
		}
		b := make([]byte, maxSerial)
		k, _ := f.Read(b)
		f.Close()
		if string(bytes.TrimRight(b[:k], "\n\x00 ")) == serial {
			return n, nil
		}
	}
	return "", fmt.Errorf("no block device with serial %q in %s", serial, sysBlockDir)
}

// mountErofsRoot finds the root disk by its serial and mounts its EROFS
// read-only at /lower. The disk can appear a moment after its driver
// loads, so the lookup is retried until a deadline.
func mountErofsRoot(serial string, missingModules []string) error {
	for _, m := range []string{"virtio_blk", "erofs"} { // initramfs.ErofsRequired
		if missing(missingModules, m) {
			return fmt.Errorf("the image's kernel has no %s (neither built in nor as a module), so it cannot mount an EROFS root: use --root-transport virtiofs", m)
		}
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /sys: %w", err)
	}
	// systemd mounts its own /sys.
	defer unix.Unmount("/sys", unix.MNT_DETACH)
	deadline := time.Now().Add(rootMountTimeout)
	for {
		name, err := findDiskBySerial(sysBlock, serial)
		if err == nil {
			dev := "/dev/" + name
			if err = unix.Mount(dev, "/lower", "erofs", unix.MS_RDONLY, ""); err == nil {
				logf("mounted the EROFS root from %s", dev)
				return nil
			}
			err = fmt.Errorf("mounting %s (erofs): %w", dev, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mounting the image root from the EROFS disk: %w", err)
		}
		time.Sleep(50 * time.Millisecond) // no context in an init; bounded by deadline
	}
}
