// Package kernel finds the kernel that a bootc image carries.
package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Kernel is what direct kernel boot needs from the image.
type Kernel struct {
	Version string // the directory name under /usr/lib/modules
	Image   string // path of the kernel image (vmlinuz)
	// Initramfs is the image's own initramfs, if it has one. bcvk boots with
	// an initramfs of its own, so this is informational.
	Initramfs string
	// ModulesDir is /usr/lib/modules/VERSION inside the image.
	ModulesDir string
}

// NotFoundError lists every place that was looked at.
type NotFoundError struct {
	Root    string
	Checked []string
	Reason  string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("no bootable kernel in the image: %s; checked: %s. A bootc image must carry exactly one kernel at /usr/lib/modules/VERSION/vmlinuz (with initramfs.img)",
		e.Reason, strings.Join(e.Checked, ", "))
}

// Find looks in the image mounted at root for exactly one kernel. UKIs are
// recognized and refused with a clear message.
func Find(root string) (Kernel, error) {
	modules := "/usr/lib/modules"
	checked := []string{modules + "/*/vmlinuz"}
	entries, err := os.ReadDir(filepath.Join(root, modules))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Kernel{}, fmt.Errorf("reading %s in the image: %w", modules, err)
	}
	var found []Kernel
	var ukis []string
	for _, e := range entries {
		dir := filepath.Join(modules, e.Name())
		if !isDir(filepath.Join(root, dir)) {
			continue
		}
		if vmlinuz := Resolve(root, filepath.Join(dir, "vmlinuz")); isNonEmptyFile(vmlinuz) {
			k := Kernel{Version: e.Name(), Image: vmlinuz, ModulesDir: filepath.Join(root, dir)}
			if p := Resolve(root, filepath.Join(dir, "initramfs.img")); isNonEmptyFile(p) {
				k.Initramfs = p
			}
			found = append(found, k)
		}
		if m, _ := filepath.Glob(filepath.Join(root, dir, "*.efi")); len(m) > 0 {
			ukis = append(ukis, strip(root, m)...)
		}
	}
	checked = append(checked, modules+"/*/*.efi", "/boot/EFI/Linux/*.efi")
	if m, _ := filepath.Glob(filepath.Join(root, "boot/EFI/Linux/*.efi")); len(m) > 0 {
		ukis = append(ukis, strip(root, m)...)
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		var vs []string
		for _, k := range found {
			vs = append(vs, k.Version)
		}
		sort.Strings(vs)
		return Kernel{}, &NotFoundError{Root: root, Checked: checked,
			Reason: fmt.Sprintf("found %d kernels (%s) but need exactly one", len(found), strings.Join(vs, ", "))}
	case len(ukis) > 0:
		return Kernel{}, &NotFoundError{Root: root, Checked: checked,
			Reason: fmt.Sprintf("found only unified kernel images (%s), which bcvk does not boot yet", strings.Join(ukis, ", "))}
	}
	checked = append(checked, "/boot/vmlinuz*")
	reason := "found none"
	if m, _ := filepath.Glob(filepath.Join(root, "boot/vmlinuz*")); len(m) > 0 {
		reason = fmt.Sprintf("found only %s, outside /usr/lib/modules; a bootc image keeps its kernel at /usr/lib/modules/VERSION/vmlinuz", strings.Join(strip(root, m), ", "))
	}
	return Kernel{}, &NotFoundError{Root: root, Checked: checked, Reason: reason}
}

// Resolve returns the host path of rel inside the tree at root, following a
// symlink in the last component as the guest would see it: absolute targets
// are taken relative to root, never to the container's own file system.
func Resolve(root, rel string) string {
	p := filepath.Clean("/" + rel)
	for range 40 {
		target, err := os.Readlink(filepath.Join(root, p))
		if err != nil {
			break
		}
		if filepath.IsAbs(target) {
			p = filepath.Clean(target)
		} else {
			p = filepath.Clean(filepath.Join(filepath.Dir(p), target))
		}
	}
	return filepath.Join(root, p)
}

func strip(root string, paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
	}
	return out
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// isNonEmptyFile follows symlinks; a link out of the image root resolves
// inside the container, which is why bcvk-inner checks the size too.
func isNonEmptyFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}
