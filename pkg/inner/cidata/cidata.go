// Package cidata makes the NoCloud seed disk for --cloud-init: a small VFAT
// image labelled CIDATA that holds user-data, meta-data and, when given,
// network-config. cloud-init finds it by its label (ds-identify and the
// NoCloud data source look for a vfat or iso9660 file system labelled
// cidata, upper or lower case; VFAT labels are upper case).
package cidata

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/bcvk/bcvk/pkg/spec"
)

// Programs in the runner image (dosfstools and mtools).
const (
	MkfsBinary  = "mkfs.vfat"
	McopyBinary = "mcopy"
)

const (
	// Label is the file system label cloud-init looks for.
	Label = "CIDATA"
	// Serial is the disk's virtio serial: /dev/disk/by-id/virtio-cidata.
	Serial = spec.CloudInitSerial
	// VolumeID is fixed, so the same seed gives the same disk.
	VolumeID = "c1da7a00"
)

// SizeKiB is the size of the VFAT image for files of total bytes: room for
// the files, their clusters' slack and the FAT's own structures, at least
// 512 KiB, in whole 64 KiB (a multiple of mtools' default track, so that
// mcopy accepts the geometry).
func SizeKiB(total int64) int {
	kib := 512 + 2*int((total+1023)/1024)
	return (kib + 63) / 64 * 64
}

// MkfsArgs is the mkfs.vfat argument list (without the binary) that creates
// out, sizeKiB large, with the CIDATA label.
func MkfsArgs(out string, sizeKiB int) []string {
	return []string{"-n", Label, "-i", VolumeID, "-C", out, strconv.Itoa(sizeKiB)}
}

// McopyArgs is the mcopy argument list (without the binary) that copies
// files into the root directory of the VFAT image img.
func McopyArgs(img string, files []string) []string {
	a := []string{"-i", img}
	a = append(a, files...)
	return append(a, "::")
}

// File is one file of the seed.
type File struct {
	Name string
	Data []byte
}

// Files are the seed's files as they go on the disk; an empty meta-data
// becomes "instance-id: bcvk-NAME".
func Files(c *spec.CloudInit, name string) []File {
	meta := c.MetaData
	if len(meta) == 0 {
		if name == "" {
			name = "vm"
		}
		meta = []byte("instance-id: bcvk-" + name + "\n")
	}
	fs := []File{{spec.CloudInitUserData, c.UserData}, {spec.CloudInitMetaData, meta}}
	if len(c.NetworkConfig) > 0 {
		fs = append(fs, File{spec.CloudInitNetworkConfig, c.NetworkConfig})
	}
	return fs
}

// Build writes the files into dir (which it creates) and makes the VFAT
// image out from them with run (argv with the binary first).
func Build(ctx context.Context, run func(ctx context.Context, argv []string) error, files []File, dir, out string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var paths []string
	var total int64
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		if err := os.WriteFile(p, f.Data, 0o600); err != nil {
			return err
		}
		paths = append(paths, p)
		total += int64(len(f.Data))
	}
	// mkfs.vfat -C refuses a file that exists.
	if err := os.Remove(out); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := run(ctx, append([]string{MkfsBinary}, MkfsArgs(out, SizeKiB(total))...)); err != nil {
		return fmt.Errorf("making the cloud-init seed disk: %w", err)
	}
	if err := run(ctx, append([]string{McopyBinary}, McopyArgs(out, paths)...)); err != nil {
		return fmt.Errorf("copying the cloud-init seed onto its disk: %w", err)
	}
	return nil
}
