package initramfs

import (
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"github.com/bcvk/bcvk/pkg/inner/imagefs"
)

// RootModules are the modules, by name, that a virtiofs root with an overlay
// on top needs; whichever of them the image's kernel has built in is skipped.
var RootModules = []string{"virtio_pci", "fuse", "virtiofs", "overlay"}

// ErofsModules are what an EROFS root disk needs besides RootModules
// (shares stay on virtiofs). crc32c_generic comes first because erofs
// needs libcrc32c, which asks the crypto API for crc32c at load time
// through request_module; with no modprobe in the initramfs its load
// fails with ENOENT unless an implementation is already there. Kernels
// with crc32c built in, or without libcrc32c, lack it harmlessly: only
// ErofsRequired must be found.
var ErofsModules = []string{"virtio_blk", "crc32c_generic", "erofs"}

// ErofsRequired are the modules of ErofsModules an EROFS root cannot do
// without (built in or as files).
var ErofsRequired = []string{"virtio_blk", "erofs"}

// VsockModules are the virtio vsock transport, dependencies first. They are
// loaded before the handover because systemd-ssh-generator only listens on
// vsock when the transport is up when generators run.
var VsockModules = []string{"vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport"}

// modName turns "kernel/fs/overlayfs/overlay.ko.xz" into "overlay".
func modName(p string) string {
	b := filepath.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// Resolution says how each wanted module is provided.
type Resolution struct {
	Files   []string // module files relative to the modules dir, in load order
	Builtin []string
	Missing []string
}

// maxIndex caps modules.dep and modules.builtin. A full Fedora kernel's
// modules.dep is under 1 MiB; an image could otherwise make bcvk-inner read
// a file of any size into memory.
const maxIndex = 8 << 20

// ResolveModules reads modules.dep and modules.builtin in dir, a directory
// inside the image mounted at root, and returns the files to load,
// dependencies first.
func ResolveModules(root, dir string, want []string) (Resolution, error) {
	deps, err := readDep(root, path.Join(dir, "modules.dep"))
	if err != nil {
		return Resolution{}, err
	}
	builtin, err := readBuiltin(root, path.Join(dir, "modules.builtin"))
	if err != nil {
		return Resolution{}, err
	}
	byName := map[string]string{}
	for file := range deps {
		byName[modName(file)] = file
	}
	var res Resolution
	seen := map[string]bool{}
	var visit func(file string)
	visit = func(file string) {
		if seen[file] {
			return
		}
		seen[file] = true
		// modprobe loads the last listed dependency first.
		d := deps[file]
		for i := len(d) - 1; i >= 0; i-- {
			visit(d[i])
		}
		res.Files = append(res.Files, file)
	}
	for _, name := range want {
		name = strings.ReplaceAll(name, "-", "_")
		switch file, ok := byName[name]; {
		case builtin[name]:
			res.Builtin = append(res.Builtin, name)
		case ok:
			visit(file)
		default:
			res.Missing = append(res.Missing, name)
		}
	}
	return res, nil
}

// readIndex reads one of depmod's files; the kernel may have none.
func readIndex(root, name string) (string, error) {
	b, err := imagefs.ReadFile(root, name, maxIndex)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return string(b), err
}

func readDep(root, name string) (map[string][]string, error) {
	text, err := readIndex(root, name)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, l := range strings.Split(text, "\n") {
		if file, rest, ok := strings.Cut(l, ":"); ok {
			out[strings.TrimSpace(file)] = strings.Fields(rest)
		}
	}
	return out, nil
}

func readBuiltin(root, name string) (map[string]bool, error) {
	text, err := readIndex(root, name)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out[modName(l)] = true
		}
	}
	return out, nil
}
