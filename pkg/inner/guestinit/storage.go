package guestinit

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/BurntSushi/toml"
	"github.com/bcvk/bcvk/pkg/inner/imagefs"
	"golang.org/x/sys/unix"
)

// storageConfs are where containers/storage looks for its configuration,
// first found wins (the one under /etc overrides the vendor's).
var storageConfs = []string{"/etc/containers/storage.conf", "/usr/share/containers/storage.conf"}

// maxStorageConf bounds the image's storage.conf that is read.
const maxStorageConf = 1 << 20

// Defaults of containers/storage for root, written out because a
// storage.conf that exists must name them.
const (
	defaultRunRoot   = "/run/containers/storage"
	defaultGraphRoot = "/var/lib/containers/storage"
)

// StorageConf returns the image's storage configuration (conf, possibly
// empty) with store added as an additional image store, and the graph
// driver set to the store's. Everything else in conf is kept.
func StorageConf(conf map[string]any, store, driver string) (map[string]any, error) {
	if conf == nil {
		conf = map[string]any{}
	}
	st, err := table(conf, "storage")
	if err != nil {
		return nil, err
	}
	// An additional store is read with the primary store's driver.
	st["driver"] = driver
	if s, _ := st["runroot"].(string); s == "" {
		st["runroot"] = defaultRunRoot
	}
	if s, _ := st["graphroot"].(string); s == "" {
		st["graphroot"] = defaultGraphRoot
	}
	opts, err := table(st, "options")
	if err != nil {
		return nil, err
	}
	var stores []any
	switch v := opts["additionalimagestores"].(type) {
	case nil:
	case []any:
		stores = v
	default:
		return nil, fmt.Errorf("storage.options.additionalimagestores is %T, not a list", v)
	}
	if !slices.Contains(stores, any(store)) {
		stores = append(stores, store)
	}
	opts["additionalimagestores"] = stores
	return conf, nil
}

// table returns m[key] as a table, creating it when missing.
func table(m map[string]any, key string) (map[string]any, error) {
	switch v := m[key].(type) {
	case nil:
		t := map[string]any{}
		m[key] = t
		return t, nil
	case map[string]any:
		return v, nil
	default:
		return nil, fmt.Errorf("%s is %T, not a table", key, v)
	}
}

// setupStorage mounts the host's store read-only below root and makes it
// an additional image store of the guest's podman. The guest's own store
// gets a tmpfs: overlay cannot put its layers on the overlay root.
func setupStorage(root string, s *Storage) error {
	if err := mountShare(root, Mount{Tag: s.Tag, Path: s.Path, ReadOnly: true}); err != nil {
		return err
	}
	conf := map[string]any{}
	for _, p := range storageConfs {
		b, err := imagefs.ReadFile(root, p, maxStorageConf)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			err = toml.Unmarshal(b, &conf)
		}
		if err != nil {
			return fmt.Errorf("reading the image's %s to add the host's container storage: %w", p, err)
		}
		break
	}
	conf, err := StorageConf(conf, s.Path, s.Driver)
	if err != nil {
		return fmt.Errorf("the image's storage.conf: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("# Written by bcvk at boot: the host's container storage is an additional image store.\n")
	if err := toml.NewEncoder(&b).Encode(conf); err != nil {
		return err
	}
	if err := writeIn(root, storageConfs[0], b.Bytes(), 0o644); err != nil {
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
