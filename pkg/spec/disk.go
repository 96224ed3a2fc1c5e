package spec

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Disk is a disk image file attached to the VM as a virtio block device. The
// file lives in the host directory mounted at DisksDir.
type Disk struct {
	// File is the file's name inside DisksDir (no directories).
	File string `json:"file"`
	// Format is the image format QEMU opens it with: raw or qcow2.
	Format string `json:"format"`
	// Serial is the virtio serial; the guest sees /dev/disk/by-id/virtio-SERIAL.
	Serial string `json:"serial"`
	// CreateSize, when positive, makes bcvk-inner create the file with this
	// many bytes (sparse) before QEMU starts; the file must not exist yet.
	CreateSize int64 `json:"createSize,omitempty"`
}

// Disk formats QEMU attaches directly.
const (
	FormatRaw   = "raw"
	FormatQCOW2 = "qcow2"
)

// virtio-blk serials are at most 20 bytes.
var serialRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,20}$`)

func validateDisks(disks []Disk) error {
	var errs []error
	seen := map[string]bool{}
	for _, d := range disks {
		if d.File == "" || strings.ContainsAny(d.File, "/\x00") || d.File == "." || d.File == ".." {
			errs = append(errs, fmt.Errorf("disk file %q must be a plain file name inside %s", d.File, DisksDir))
		}
		if d.Format != FormatRaw && d.Format != FormatQCOW2 {
			errs = append(errs, fmt.Errorf("disk %s: format %q is not attachable: use raw or qcow2", d.File, d.Format))
		}
		if !serialRE.MatchString(d.Serial) {
			errs = append(errs, fmt.Errorf("disk %s: serial %q must be 1-20 letters, digits, '_' or '-'", d.File, d.Serial))
		}
		if seen[d.Serial] {
			errs = append(errs, fmt.Errorf("disk serial %q is used twice", d.Serial))
		}
		seen[d.Serial] = true
		if d.CreateSize < 0 {
			errs = append(errs, errors.New("disk size must not be negative"))
		}
	}
	return errors.Join(errs...)
}
