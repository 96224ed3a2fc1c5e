package guestinit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/bcvk/bcvk/pkg/inner/imagefs"
	"github.com/bcvk/bcvk/pkg/storageconf"
	"golang.org/x/sys/unix"
)

// setupStorage mounts the host's store read-only below root and makes it
// an additional image store of the guest's podman. The guest's own store
// gets a tmpfs: overlay cannot put its layers on the overlay root.
func setupStorage(root string, s *Storage) error {
	if err := mountShare(root, Mount{Tag: s.Tag, Path: s.Path, ReadOnly: true}); err != nil {
		return err
	}
	conf, err := storageconf.Read(root)
	if err != nil {
		return fmt.Errorf("adding the host's container storage: %w", err)
	}
	conf, err = storageconf.Merge(conf, s.Path, s.Driver)
	if err != nil {
		return fmt.Errorf("the image's storage.conf: %w", err)
	}
	b, err := storageconf.Encode(conf, "Written by bcvk at boot: the host's container storage is an additional image store.")
	if err != nil {
		return err
	}
	if err := writeIn(root, storageconf.Paths[0], b, 0o644); err != nil {
		return err
	}
	graph := conf["storage"].(map[string]any)["graphroot"].(string)
	dir, err := mkdirIn(root, graph, 0o700)
	if err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		return fmt.Errorf("mounting a tmpfs for the guest's container storage at %s: %w", graph, err)
	}
	logf("the host's container storage is at %s (%s); podman's own store is a tmpfs at %s", s.Path, s.Driver, graph)
	return nil
}

// mkdirIn makes name (and its parents) inside root, following the image's
// symlinks inside root, and returns the host path of the directory.
func mkdirIn(root, name string, perm os.FileMode) (string, error) {
	p, err := imagefs.ResolveCreate(root, name)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, p)
	if err := os.MkdirAll(dir, perm); err != nil {
		return "", fmt.Errorf("making %s: %w", name, err)
	}
	return dir, nil
}

// writeIn writes a file at name inside root, replacing what is there.
func writeIn(root, name string, b []byte, perm os.FileMode) error {
	dir, err := mkdirIn(root, path.Dir(name), 0o755)
	if err != nil {
		return err
	}
	p := filepath.Join(dir, path.Base(name))
	// A symlink left there would be followed by WriteFile.
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.WriteFile(p, b, perm)
}
