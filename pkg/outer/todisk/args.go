// Package todisk makes bootable disk images from bootc images: the image
// installs itself with its own `bootc install to-disk`, inside an ephemeral
// VM that has the target file attached as a virtio disk.
package todisk

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/spec"
)

// Disk formats. vmdk (VMware), vhdx (Hyper-V) and vpc (VHD, Azure) are
// converted by qemu-img from a qcow2 the VM installed to.
const (
	FormatRaw   = spec.FormatRaw
	FormatQCOW2 = spec.FormatQCOW2
	FormatVMDK  = "vmdk"
	FormatVHDX  = "vhdx"
	FormatVPC   = "vpc"
)

// Formats lists every output format.
var Formats = []string{FormatRaw, FormatQCOW2, FormatVMDK, FormatVHDX, FormatVPC}

var extFormats = map[string]string{
	".raw": FormatRaw, ".img": FormatRaw,
	".qcow2": FormatQCOW2,
	".vmdk":  FormatVMDK,
	".vhdx":  FormatVHDX,
	".vhd":   FormatVPC, ".vpc": FormatVPC,
}

// FormatFor returns the format: the flag when given, else the one the file
// name's extension says, else raw.
func FormatFor(disk, flag string) (string, error) {
	if flag != "" {
		for _, f := range Formats {
			if f == flag {
				return f, nil
			}
		}
		return "", fmt.Errorf("unknown disk format %q: use one of %s", flag, strings.Join(Formats, ", "))
	}
	if f, ok := extFormats[strings.ToLower(filepath.Ext(disk))]; ok {
		return f, nil
	}
	return FormatRaw, nil
}

// installFormat is what the VM writes: raw stays raw, everything else is
// installed to qcow2 (sparse, any file system) and converted afterwards.
func installFormat(format string) string {
	if format == FormatRaw {
		return FormatRaw
	}
	return FormatQCOW2
}

// Serial is the virtio serial of the target disk.
const Serial = "output"

// TargetDevice is where the guest sees the target disk.
const TargetDevice = "/dev/disk/by-id/virtio-" + Serial

// Install is what `bootc install to-disk` is asked for.
type Install struct {
	// Source is the image's ID: the installer reads it from the host's
	// container storage (shared into the VM), and an ID cannot move to
	// another image while the install runs, as a tag can.
	Source string
	// Target is the reference the installed system follows for updates
	// (the user's); empty when the user named the image by its ID.
	Target     string
	Filesystem string
	RootSize   string
	KernelArgs []string
}

var idRE = regexp.MustCompile(`^(sha256:)?[0-9a-f]{12,64}$`)

// targetFor is the reference the installed system should follow: the
// user's, unless that was an image ID (which no registry serves).
func targetFor(ref string) string {
	if idRE.MatchString(ref) || strings.HasPrefix(ref, "-") {
		return ""
	}
	return ref
}

var fsRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

// Validate checks the options before anything starts.
func (in Install) Validate() error {
	if in.Filesystem != "" && !fsRE.MatchString(in.Filesystem) {
		return fmt.Errorf("--filesystem %q: give a file system type such as ext4, xfs or btrfs", in.Filesystem)
	}
	if in.RootSize != "" {
		if _, err := spec.ParseSize(in.RootSize, 1); err != nil {
			return fmt.Errorf("--root-size: %w", err)
		}
	}
	for _, a := range in.KernelArgs {
		if err := spec.ValidateKernelArg(a); err != nil {
			return fmt.Errorf("--karg: %w", err)
		}
	}
	return nil
}

// InstallArgs is the command run in the guest.
func InstallArgs(in Install) []string {
	a := []string{"bootc", "install", "to-disk", "--generic-image", "--skip-fetch-check"}
	if in.Source != "" {
		a = append(a, "--source-imgref", "containers-storage:"+strings.TrimPrefix(in.Source, "sha256:"))
	}
	if in.Target != "" {
		a = append(a, "--target-imgref", in.Target)
	}
	if in.Filesystem != "" {
		a = append(a, "--filesystem", in.Filesystem)
	}
	if rs := strings.TrimSpace(in.RootSize); rs != "" {
		// Validate's size parser allows surrounding blanks; bootc gets none.
		a = append(a, "--root-size", rs)
	}
	for _, k := range in.KernelArgs {
		a = append(a, "--karg", k)
	}
	return append(a, TargetDevice)
}

// ConvertConfig is a qemu-img conversion in a runner container.
type ConvertConfig struct {
	Name        string
	RunnerImage string
	Version     string
	Dir         string // host directory with both files
	From, To    string // file names in Dir
	Format      string
}

// convertOptions are the -o settings each target platform expects.
var convertOptions = map[string]string{
	// streamOptimized is what vSphere imports (OVA) and VMware runs.
	FormatVMDK: "subformat=streamOptimized",
	// Azure takes fixed-size VHDs only, sized in whole MiB.
	FormatVPC: "subformat=fixed,force_size=on",
}

// ConvertPodmanArgs returns the `podman run` argument list (without
// "podman") that converts From (qcow2) into To.
func ConvertPodmanArgs(c ConvertConfig) []string {
	a := []string{"run", "--rm", "--name", c.Name,
		"--label", LabelToDisk + "=1",
		"--label", spec.LabelVersion + "=" + c.Version,
		"--pull=never",
		// Dir is named after DISK, so it may hold "," or '"'. A control
		// character it cannot hold: Launch refused this same directory as
		// the installer VM's DisksDir before any conversion.
		"--mount", podman.MountArg("type=bind", "source="+c.Dir, "destination="+spec.DisksDir),
		"--security-opt", "label=disable",
		"--network", "none",
		"--entrypoint", "qemu-img",
		c.RunnerImage,
		"convert", "-f", FormatQCOW2, "-O", c.Format,
	}
	if o := convertOptions[c.Format]; o != "" {
		a = append(a, "-o", o)
	}
	return append(a, spec.DisksDir+"/"+c.From, spec.DisksDir+"/"+c.To)
}

// LabelToDisk marks the containers to-disk starts.
const LabelToDisk = "bcvk.to-disk"
