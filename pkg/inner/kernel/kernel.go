// Package kernel finds the kernel that a bootc image carries.
package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bcvk/bcvk/pkg/inner/imagefs"
)

// Kernel is what direct kernel boot needs from the image.
type Kernel struct {
	Version string // the directory name under /usr/lib/modules
	// Image is the host path of the kernel image (vmlinuz): a non-empty
	// regular file, every component of it resolved inside Root, since QEMU
	// opens it by this path.
	Image string
	// Initramfs is the image's own initramfs, if it has one (a host path,
	// resolved like Image). bcvk boots with an initramfs of its own, so
	// this is informational.
	Initramfs string
	// Root is the host path where the image is mounted.
	Root string
	// ModulesDir is /usr/lib/modules/VERSION, a path inside the image: its
	// files must be read through package imagefs, relative to Root.
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
// recognized and refused with a clear message. Every path is resolved
// inside root (see package imagefs), so the kernel found is the image's.
func Find(root string) (Kernel, error) {
	const modules = "/usr/lib/modules"
	checked := []string{modules + "/*/vmlinuz"}
	entries, err := imagefs.ReadDir(root, modules)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Kernel{}, fmt.Errorf("reading %s in the image: %w", modules, err)
	}
	var found []Kernel
	var ukis, refused []string
	for _, e := range entries {
		dir := path.Join(modules, e.Name())
		if fi, _, err := imagefs.Stat(root, dir); err != nil || !fi.IsDir() {
			continue
		}
		vmlinuz, err := file(root, path.Join(dir, "vmlinuz"))
		switch {
		case err == nil && imagefs.Quote(e.Name()) != e.Name():
			// The version ends up in messages and the warm-state metadata.
			refused = append(refused, fmt.Sprintf("%s (not a kernel version name)", imagefs.Quote(dir)))
		case err == nil:
			k := Kernel{Version: e.Name(), Image: vmlinuz, Root: root, ModulesDir: dir}
			if p, err := file(root, path.Join(dir, "initramfs.img")); err == nil {
				k.Initramfs = p
			}
			found = append(found, k)
		case !errors.Is(err, fs.ErrNotExist):
			refused = append(refused, err.Error())
		}
		ukis = append(ukis, glob(root, dir, "*.efi")...)
	}
	checked = append(checked, modules+"/*/*.efi", "/boot/EFI/Linux/*.efi")
	ukis = append(ukis, glob(root, "/boot/EFI/Linux", "*.efi")...)
	var reason string
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		var vs []string
		for _, k := range found {
			vs = append(vs, k.Version)
		}
		sort.Strings(vs)
		reason = fmt.Sprintf("found %d kernels (%s) but need exactly one", len(found), list(vs))
	case len(ukis) > 0:
		reason = fmt.Sprintf("found only unified kernel images (%s), which bcvk does not boot yet", list(ukis))
	default:
		checked = append(checked, "/boot/vmlinuz*")
		reason = "found none"
		if m := glob(root, "/boot", "vmlinuz*"); len(m) > 0 {
			reason = fmt.Sprintf("found only %s, outside /usr/lib/modules; a bootc image keeps its kernel at /usr/lib/modules/VERSION/vmlinuz", list(m))
		}
	}
	if len(refused) > 0 {
		reason += "; refused " + list(refused)
	}
	return Kernel{}, &NotFoundError{Root: root, Checked: checked, Reason: reason}
}

// file returns the host path of name if it resolves inside root to a
// non-empty regular file.
func file(root, name string) (string, error) {
	f, p, err := imagefs.Open(root, name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("checking %s in the image: %w", imagefs.Quote(name), err)
	}
	if fi.Size() == 0 {
		return "", fmt.Errorf("checking %s in the image: it is empty", imagefs.Quote(name))
	}
	return filepath.Join(root, p), nil
}

// glob returns the image paths of the entries of dir that match pattern,
// quoted for messages; a missing dir has none.
func glob(root, dir, pattern string) []string {
	entries, _ := imagefs.ReadDir(root, dir)
	var out []string
	for _, e := range entries {
		if ok, _ := path.Match(pattern, e.Name()); ok {
			out = append(out, imagefs.Quote(path.Join(dir, e.Name())))
		}
	}
	return out
}

// list joins names for a message, at most a few of them: an image can hold
// any number, and the message must stay readable.
func list(names []string) string {
	const most = 5
	if len(names) > most {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:most], ", "), len(names)-most)
	}
	return strings.Join(names, ", ")
}
