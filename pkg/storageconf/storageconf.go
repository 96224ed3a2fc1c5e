// Package storageconf edits containers/storage's storage.conf of an image:
// the host's container storage becomes an additional image store of the
// guest's podman, everything else of the image's configuration kept. The
// ephemeral guest init writes it at boot; persistent libvirt VMs get it
// through a systemd credential.
package storageconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/BurntSushi/toml"
	"github.com/bcvk/bcvk/pkg/inner/imagefs"
)

// Paths are where containers/storage looks for its configuration,
// first found wins (the one under /etc overrides the vendor's).
var Paths = []string{"/etc/containers/storage.conf", "/usr/share/containers/storage.conf"}

// MaxSize bounds the image's storage.conf that is read.
const MaxSize = 1 << 20

// Defaults of containers/storage for root, written out because a
// storage.conf that exists must name them.
const (
	defaultRunRoot   = "/run/containers/storage"
	defaultGraphRoot = "/var/lib/containers/storage"
)

// Merge returns the image's storage configuration (conf, possibly
// empty) with store added as an additional image store, and the graph
// driver set to the store's. Everything else in conf is kept.
func Merge(conf map[string]any, store, driver string) (map[string]any, error) {
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

// Read returns the storage.conf of the image at root (the first of Paths
// that exists; empty when none), resolved inside root.
func Read(root string) (map[string]any, error) {
	conf := map[string]any{}
	for _, p := range Paths {
		b, err := imagefs.ReadFile(root, p, MaxSize)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			err = toml.Unmarshal(b, &conf)
		}
		if err != nil {
			return nil, fmt.Errorf("reading the image's %s: %w", p, err)
		}
		break
	}
	return conf, nil
}

// Encode writes conf as TOML with a header saying who wrote it.
func Encode(conf map[string]any, header string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# " + header + "\n")
	if err := toml.NewEncoder(&b).Encode(conf); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
