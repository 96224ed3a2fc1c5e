package spec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// The files of a NoCloud seed that bcvk passes on; other files in the
// directory are ignored.
const (
	CloudInitUserData      = "user-data"
	CloudInitMetaData      = "meta-data"
	CloudInitNetworkConfig = "network-config"
)

// CloudInitSerial is the seed disk's virtio serial: the guest sees
// /dev/disk/by-id/virtio-cidata.
const CloudInitSerial = "cidata"

// MaxCloudInitSeed bounds a seed's files together: they travel in the spec
// and are copied onto a small disk.
const MaxCloudInitSeed = 1 << 20

// CloudInit is a NoCloud seed (--cloud-init DIR). The host reads the files
// when it validates the flags, so the VM gets them as they were then, and a
// symlink in DIR is followed on the host, as the user sees it. bcvk-inner
// puts them on a VFAT disk labelled CIDATA.
type CloudInit struct {
	UserData []byte `json:"userData"`
	// MetaData empty (the file is missing or empty) makes bcvk-inner write
	// "instance-id: bcvk-NAME".
	MetaData []byte `json:"metaData,omitempty"`
	// NetworkConfig empty leaves the file out (cloud-init reads an empty
	// one as none at all).
	NetworkConfig []byte `json:"networkConfig,omitempty"`
}

// Size is the seed's files' size together.
func (c *CloudInit) Size() int64 {
	return int64(len(c.UserData) + len(c.MetaData) + len(c.NetworkConfig))
}

func (c *CloudInit) validate() error {
	if c.Size() > MaxCloudInitSeed {
		return fmt.Errorf("the cloud-init seed's files hold %d bytes together: at most %d (1 MiB)", c.Size(), MaxCloudInitSeed)
	}
	return nil
}

// ReadCloudInitDir reads the NoCloud seed in dir: user-data (required),
// meta-data and network-config (optional), each a regular file (a symlink
// to one is followed). It also returns the names of the other entries,
// which are not passed on.
func ReadCloudInitDir(dir string) (*CloudInit, []string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%s does not exist: give a NoCloud seed directory: user-data, and optionally meta-data and network-config", dir)
		}
		return nil, nil, err
	}
	if !fi.IsDir() {
		return nil, nil, fmt.Errorf("%s is not a directory: give a NoCloud seed directory: user-data, and optionally meta-data and network-config", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var ignored []string
	for _, e := range entries {
		switch e.Name() {
		case CloudInitUserData, CloudInitMetaData, CloudInitNetworkConfig:
		default:
			ignored = append(ignored, e.Name())
		}
	}
	sort.Strings(ignored)
	c := &CloudInit{}
	budget := int64(MaxCloudInitSeed)
	for _, f := range []struct {
		name     string
		required bool
		into     *[]byte
	}{
		{CloudInitUserData, true, &c.UserData},
		{CloudInitMetaData, false, &c.MetaData},
		{CloudInitNetworkConfig, false, &c.NetworkConfig},
	} {
		b, err := readSeedFile(filepath.Join(dir, f.name), budget)
		if errors.Is(err, os.ErrNotExist) {
			if f.required {
				return nil, nil, fmt.Errorf("%s has no %s file: a NoCloud seed needs user-data (e.g. a #cloud-config document); meta-data and network-config are optional", dir, f.name)
			}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		budget -= int64(len(b))
		*f.into = b
	}
	return c, ignored, nil
}

// readSeedFile reads a regular file of at most budget bytes.
func readSeedFile(path string, budget int64) ([]byte, error) {
	// O_NONBLOCK: a FIFO in the way must not hang bcvk (it is refused below).
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, lerr := os.Lstat(path); lerr == nil {
				return nil, fmt.Errorf("%s is a symlink to nothing", path)
			}
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, budget+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > budget {
		return nil, fmt.Errorf("%s is too large: the seed's files may hold at most %d bytes (1 MiB) together", path, MaxCloudInitSeed)
	}
	return b, nil
}
