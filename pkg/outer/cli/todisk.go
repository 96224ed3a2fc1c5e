package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/outer/todisk"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/version"
	"github.com/spf13/cobra"
)

// toDiskFlags are to-disk's own options on top of the installer VM's,
// which are the machine flags of every VM.
type toDiskFlags struct {
	machineFlags
	format         string
	diskSize       string
	filesystem     string
	rootSize       string
	kargs          []string
	dryRun         bool
	overwrite      bool
	installTimeout time.Duration
}

func newToDiskCommand(g *globals, st Streams) *cobra.Command {
	var f toDiskFlags
	c := &cobra.Command{
		Use:   "to-disk IMAGE DISK",
		Short: "Install IMAGE into a bootable disk image file",
		Long: `Install IMAGE into the disk image file DISK, the way bootc intends: the image
boots as an ephemeral VM with DISK attached as a virtio disk (serial "output",
so /dev/disk/by-id/virtio-output in the guest), and runs its own
  bootc install to-disk --generic-image --skip-fetch-check [OPTIONS] /dev/disk/by-id/virtio-output

The disk is written beside DISK and renamed into place only when the install
succeeded; on failure or Ctrl-C nothing is left at DISK. When DISK was made
before from the same image digest, reference, options, size and format, it is
reused at once (the key is kept in DISK's extended attribute ` + todisk.XattrName + `).

Formats: raw, qcow2 (made with qemu-img from the runner image), and vmdk
(VMware), vhdx (Hyper-V), vpc (VHD, Azure: fixed size) converted from qcow2.
Without --format, DISK's extension decides (.raw/.img, .qcow2, .vmdk, .vhdx,
.vhd); otherwise raw.`,
		Example: `  bcvk to-disk localhost/bcvk-sample:latest sample.qcow2
  bcvk to-disk --disk-size 20G --karg console=ttyS0 quay.io/fedora/fedora-bootc:42 fedora.raw
  bcvk to-disk --dry-run localhost/bcvk-sample:latest sample.qcow2`,
		Args: exactArgs(2, "IMAGE and DISK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(args[0], args[1])
			if err != nil {
				return err
			}
			o.RunnerImage, o.Version, o.Progress = g.runnerImage, version.Version, g.progressMode(st.Err)
			rt, err := newRuntime()
			if err != nil {
				return err
			}
			return todisk.Run(cmd.Context(), rt, o, st.vm())
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.format, "format", "", "disk format: "+strings.Join(todisk.Formats, ", ")+" (default: from DISK's extension, else raw)")
	fs.StringVar(&f.diskSize, "disk-size", "", "disk size, e.g. 10G (default: twice the image size, at least 4G)")
	fs.StringVar(&f.filesystem, "filesystem", "", "root file system, passed to bootc install (e.g. ext4, xfs, btrfs)")
	fs.StringVar(&f.rootSize, "root-size", "", "size of the root partition, e.g. 8G (default: the rest of the disk)")
	fs.StringArrayVar(&f.kargs, "karg", nil, "kernel argument for the installed system (repeatable)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "only print would-reuse or would-regenerate")
	fs.BoolVar(&f.overwrite, "overwrite", false, "replace DISK even when bcvk did not make it")
	fs.DurationVar(&f.installTimeout, "install-timeout", todisk.DefaultInstallTimeout, "how long bootc install may take")
	f.machineFlags.register(fs, "installer VM", "installer VM")
	return c
}

// options checks every flag before anything starts.
func (f *toDiskFlags) options(image, disk string) (todisk.Options, error) {
	o := todisk.Options{Image: image, Disk: disk, Format: f.format, DryRun: f.dryRun, Overwrite: f.overwrite,
		InstallTimeout: f.installTimeout, ReadyTimeout: f.readyTimeout}
	bad := func(err error) (todisk.Options, error) { return o, usageError{err} }
	if strings.TrimSpace(disk) == "" {
		return bad(fmt.Errorf("DISK must be a file path"))
	}
	if _, err := todisk.FormatFor(disk, f.format); err != nil {
		return bad(fmt.Errorf("--format: %w", err))
	}
	if f.diskSize != "" {
		n, err := spec.ParseSize(f.diskSize, 1)
		if err != nil {
			return bad(fmt.Errorf("--disk-size: %w", err))
		}
		if n < 1<<30 {
			return bad(fmt.Errorf("--disk-size %s is too small: give at least 1G", f.diskSize))
		}
		o.Size = n
	}
	o.Install = todisk.Install{Filesystem: f.filesystem, RootSize: strings.TrimSpace(f.rootSize), KernelArgs: f.kargs}
	if err := o.Install.Validate(); err != nil {
		return bad(err)
	}
	if f.installTimeout <= 0 || f.readyTimeout <= 0 {
		return bad(fmt.Errorf("--timeout and --install-timeout must be positive, e.g. 5m"))
	}
	sp, err := f.machineFlags.spec()
	if err != nil {
		return o, err
	}
	if err := sp.Validate(); err != nil {
		return bad(err)
	}
	o.VM = sp
	o.Pull = f.pullOpts()
	return o, nil
}
