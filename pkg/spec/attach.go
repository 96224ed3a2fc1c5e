package spec

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// AttachedDisk is a user's disk image file (--mount-disk-file), bind-mounted
// into the container at AttachedDiskPath(i) and attached as a virtio disk.
type AttachedDisk struct {
	// Host is the file on the host (for messages; bcvk-inner opens the
	// container path).
	Host     string `json:"host"`
	Serial   string `json:"serial"`
	Format   string `json:"format"` // raw or qcow2
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// AttachedDir holds the attached disk files inside the container.
const AttachedDir = "/bcvk/attached"

// MaxAttachedDisks bounds --mount-disk-file: each is a PCI device.
const MaxAttachedDisks = 16

// AttachedDiskPath is where the i-th attached disk file is mounted.
func AttachedDiskPath(i int) string { return fmt.Sprintf("%s/disk%d", AttachedDir, i) }

// Swap is the swap disk (--add-swap): made by bcvk-inner in the container's
// own writable layer, so that it is gone with the container.
const (
	SwapFile   = "/var/lib/bcvk/swap.img"
	SwapSerial = "bcvk-swap"
	// MinSwapBytes is the least swap worth a disk: the kernel wants ten
	// pages, and less than a MiB helps nobody.
	MinSwapBytes = 1 << 20
	// MaxSwapBytes bounds the sparse file in the container's layer.
	MaxSwapBytes = 1 << 40
)

// SwapKernelArg is the kernel argument that makes the guest's systemd
// (254 and later) activate the swap disk.
func SwapKernelArg() string {
	return "systemd.swap-extra=/dev/disk/by-id/virtio-" + SwapSerial
}

// ParseMountDiskFile reads FILE[:NAME[:FORMAT]][:ro]. An empty NAME is the
// file's base name without its extension, made fit for a serial.
// The format, when not given, is left empty for the caller to detect.
func ParseMountDiskFile(s, cwd string) (AttachedDisk, error) {
	parts := strings.Split(s, ":")
	var d AttachedDisk
	if n := len(parts); n > 1 && parts[n-1] == "ro" {
		d.ReadOnly = true
		parts = parts[:n-1]
	}
	if len(parts) > 3 || parts[0] == "" {
		return d, fmt.Errorf("%q: give FILE[:NAME[:FORMAT]][:ro], e.g. ./scratch.qcow2:scratch or data.img:data:raw:ro", s)
	}
	d.Host = parts[0]
	if !filepath.IsAbs(d.Host) {
		d.Host = filepath.Join(cwd, d.Host)
	}
	d.Host = filepath.Clean(d.Host)
	if len(parts) > 1 && parts[1] != "" {
		d.Serial = parts[1]
		if !serialRE.MatchString(d.Serial) {
			return d, fmt.Errorf("%q: name %q must be 1-20 letters, digits, '_' or '-' (it becomes the disk's serial, /dev/disk/by-id/virtio-NAME)", s, d.Serial)
		}
	} else {
		d.Serial = SerialFromFile(d.Host)
	}
	if len(parts) > 2 {
		d.Format = parts[2]
		if d.Format != FormatRaw && d.Format != FormatQCOW2 {
			return d, fmt.Errorf("%q: format %q: use raw or qcow2", s, d.Format)
		}
	}
	return d, nil
}

// SerialFromFile makes a serial from a file name: its base name without
// the extension, with other characters replaced by '-', at most 20 bytes.
func SerialFromFile(path string) string {
	base := filepath.Base(path)
	if ext := filepath.Ext(base); ext != "" && ext != base {
		base = strings.TrimSuffix(base, ext)
	}
	b := []byte(base)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 20 {
		b = b[:20]
	}
	if len(b) == 0 {
		return "disk"
	}
	return string(b)
}

func validateAttached(s *Spec) error {
	var errs []error
	if len(s.AttachedDisks) > MaxAttachedDisks {
		errs = append(errs, fmt.Errorf("%d disk files: at most %d", len(s.AttachedDisks), MaxAttachedDisks))
	}
	seen := map[string]bool{}
	for _, d := range s.Disks {
		seen[d.Serial] = true
	}
	if s.SwapBytes > 0 {
		seen[SwapSerial] = true
	}
	if s.CloudInit != nil {
		seen[CloudInitSerial] = true
	}
	for _, d := range s.AttachedDisks {
		if d.Format != FormatRaw && d.Format != FormatQCOW2 {
			errs = append(errs, fmt.Errorf("disk file %s: format %q: use raw or qcow2", d.Host, d.Format))
		}
		if !serialRE.MatchString(d.Serial) {
			errs = append(errs, fmt.Errorf("disk file %s: name %q must be 1-20 letters, digits, '_' or '-'", d.Host, d.Serial))
		}
		if seen[d.Serial] {
			errs = append(errs, fmt.Errorf("disk name %q is used twice: give each --mount-disk-file its own NAME (FILE:NAME)", d.Serial))
		}
		seen[d.Serial] = true
	}
	if s.SwapBytes != 0 && (s.SwapBytes < MinSwapBytes || s.SwapBytes > MaxSwapBytes) {
		errs = append(errs, fmt.Errorf("swap of %d bytes is out of range: give between 1M and 1T", s.SwapBytes))
	}
	if s.SwapBytes%4096 != 0 {
		errs = append(errs, errors.New("the swap size must be a whole number of 4 KiB pages"))
	}
	return errors.Join(errs...)
}
