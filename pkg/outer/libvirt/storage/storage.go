// Package storage keeps bcvk's disks in a libvirt storage pool: one base
// disk per image digest and install options, made once and uploaded through
// libvirt's stream API (so a remote host needs nothing but libvirtd), and a
// copy-on-write qcow2 clone of it per VM. Every disk is reached through the
// pool's API, never through a local path, remote or not.
package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/bcvk/bcvk/pkg/outer/libvirt/conn"
	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// DefaultPool is the pool bcvk defines when it is missing.
const DefaultPool = "bcvk"

// PoolDir is where a pool bcvk defines keeps its files on a system
// connection's host.
func PoolDir(pool string) string { return "/var/lib/libvirt/images/" + pool }

// Volume names. A base is "bcvk-base-HASH.qcow2" with its key beside it in
// "bcvk-base-HASH.json", written last: a base without its key file is an
// unfinished upload and never used. A VM's clone is "bcvk-vm-NAME.qcow2".
const (
	basePrefix = "bcvk-base-"
	baseSuffix = ".qcow2"
	keySuffix  = ".json"
	clonePref  = "bcvk-vm-"
	swapPref   = "bcvk-swap-"
	swapSuffix = ".img"
	// maxKeyFile bounds what is read back of a key file: it is a small
	// JSON document, and the pool's contents are not trusted.
	maxKeyFile = 64 << 10
)

var poolRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// ValidPool checks a pool name given by the user.
func ValidPool(name string) error {
	if !poolRE.MatchString(name) {
		return fmt.Errorf("pool name %q: want 1 to 63 letters, digits, '_', '.' or '-'", name)
	}
	return nil
}

// BaseKey is everything a base disk's contents depend on.
type BaseKey struct {
	Version    int      `json:"version"`
	Image      string   `json:"image"`
	Digest     string   `json:"digest"`
	ImageID    string   `json:"imageID"`
	DiskSize   int64    `json:"diskSize"`
	Filesystem string   `json:"filesystem,omitempty"`
	RootSize   string   `json:"rootSize,omitempty"`
	KernelArgs []string `json:"kernelArgs,omitempty"`
}

// keyVersion changes when the way bases are made changes.
const keyVersion = 2 // 2: the firmware is not part of it (the disk boots both ways)

// NewBaseKey fills in the version.
func NewBaseKey(k BaseKey) BaseKey { k.Version = keyVersion; return k }

// Hash names the base: the reference is left out, so two tags of one
// digest share a base.
func (k BaseKey) Hash() string {
	k.Image = ""
	b, _ := json.Marshal(k) // plain fields always marshal
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// BaseName is the base volume's name for k.
func (k BaseKey) BaseName() string { return basePrefix + k.Hash() + baseSuffix }

func keyName(base string) string { return strings.TrimSuffix(base, baseSuffix) + keySuffix }

// IsBaseName reports whether a volume name is one of bcvk's bases.
func IsBaseName(n string) bool {
	return strings.HasPrefix(n, basePrefix) && strings.HasSuffix(n, baseSuffix)
}

// CloneName is a VM's disk volume.
func CloneName(vm string) string { return clonePref + vm + baseSuffix }

// SwapName is a VM's swap volume (--add-swap).
func SwapName(vm string) string { return swapPref + vm + swapSuffix }

// SwapXML is a sparse raw volume of size bytes: allocation 0, where
// libvirt would otherwise allocate all of it.
func SwapXML(name string, size uint64) (string, error) {
	v := libvirtxml.StorageVolume{
		Name:       name,
		Capacity:   &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: size},
		Allocation: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: 0},
		Target:     &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "raw"}},
	}
	return v.Marshal()
}

// PoolXML defines a directory pool.
func PoolXML(name, dir string) (string, error) {
	p := libvirtxml.StoragePool{Type: "dir", Name: name, Target: &libvirtxml.StoragePoolTarget{Path: dir}}
	return p.Marshal()
}

// BaseXML is the empty qcow2 volume that a base is uploaded into.
func BaseXML(name string, capacity uint64) (string, error) {
	v := libvirtxml.StorageVolume{
		Name:     name,
		Capacity: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: capacity},
		Target:   &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"}},
	}
	return v.Marshal()
}

// RawXML is a raw volume of size bytes (the key file).
func RawXML(name string, size uint64) (string, error) {
	v := libvirtxml.StorageVolume{
		Name:     name,
		Capacity: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: size},
		Target:   &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "raw"}},
	}
	return v.Marshal()
}

// CloneXML is a qcow2 overlay on the base at basePath. The backing format
// is recorded in the overlay's header: libvirt refuses to probe it.
func CloneXML(name string, capacity uint64, basePath string) (string, error) {
	v := libvirtxml.StorageVolume{
		Name:     name,
		Capacity: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: capacity},
		Target:   &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"}},
		BackingStore: &libvirtxml.StorageVolumeBackingStore{
			Path: basePath, Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"},
		},
	}
	return v.Marshal()
}

// Store is one pool on one connection.
type Store struct {
	L    *golibvirt.Libvirt
	Pool string
	// Dir is the directory a missing pool is defined at.
	Dir string
}

// IsNotFound reports libvirt's "no such volume/pool/domain".
func IsNotFound(err error) bool { return conn.IsNotFound(err) }

func lerr(op string, err error) error { return conn.Wrap(op, err) }

// Ensure finds the pool, or defines, builds and starts it (created says
// so: the caller removes a pool it made when what it made it for fails),
// and refreshes it so that volumes written by others show.
func (s *Store) Ensure() (p golibvirt.StoragePool, created bool, err error) {
	p, err = s.L.StoragePoolLookupByName(s.Pool)
	if IsNotFound(err) {
		x, xerr := PoolXML(s.Pool, s.Dir)
		if xerr != nil {
			return p, false, xerr
		}
		if p, err = s.L.StoragePoolDefineXML(x, 0); err != nil {
			return p, false, lerr("defining storage pool "+s.Pool+" at "+s.Dir, err)
		}
		created = true
		defer func() {
			if err != nil {
				_ = s.RemovePool(p)
			}
		}()
		if err := s.L.StoragePoolBuild(p, 0); err != nil {
			return p, created, lerr("building storage pool "+s.Pool, err)
		}
		_ = s.L.StoragePoolSetAutostart(p, 1) // a convenience only
	} else if err != nil {
		return p, false, lerr("looking up storage pool "+s.Pool, err)
	}
	state, _, _, _, err := s.L.StoragePoolGetInfo(p)
	if err != nil {
		return p, created, lerr("reading storage pool "+s.Pool, err)
	}
	if golibvirt.StoragePoolState(state) != golibvirt.StoragePoolRunning {
		if err := s.L.StoragePoolCreate(p, 0); err != nil {
			return p, created, lerr("starting storage pool "+s.Pool, err)
		}
	}
	if err := s.L.StoragePoolRefresh(p, 0); err != nil {
		return p, created, lerr("refreshing storage pool "+s.Pool, err)
	}
	return p, created, nil
}

// RemovePool stops, deletes (its empty directory) and undefines a pool
// bcvk made in this run.
func (s *Store) RemovePool(p golibvirt.StoragePool) error {
	_ = s.L.StoragePoolDestroy(p) // not running: fine
	if err := s.L.StoragePoolDelete(p, 0); err != nil && !IsNotFound(err) {
		return lerr("deleting the directory of storage pool "+s.Pool, err)
	}
	if err := s.L.StoragePoolUndefine(p); err != nil && !IsNotFound(err) {
		return lerr("undefining storage pool "+s.Pool, err)
	}
	return nil
}

// Find finds the pool without making it (listing changes nothing); found
// is false when there is none.
func (s *Store) Find() (p golibvirt.StoragePool, found bool, err error) {
	p, err = s.L.StoragePoolLookupByName(s.Pool)
	if IsNotFound(err) {
		return p, false, nil
	}
	if err != nil {
		return p, false, lerr("looking up storage pool "+s.Pool, err)
	}
	state, _, _, _, err := s.L.StoragePoolGetInfo(p)
	if err != nil {
		return p, false, lerr("reading storage pool "+s.Pool, err)
	}
	if golibvirt.StoragePoolState(state) != golibvirt.StoragePoolRunning {
		return p, false, fmt.Errorf("storage pool %s is not active: start it (virsh pool-start %s)", s.Pool, s.Pool)
	}
	return p, true, nil
}

// Refresh rescans the pool's directory, so that volumes written by others
// show.
func (s *Store) Refresh(p golibvirt.StoragePool) error {
	return lerr("refreshing storage pool "+s.Pool, s.L.StoragePoolRefresh(p, 0))
}

// Lookup finds a volume; found is false when there is none.
func (s *Store) Lookup(p golibvirt.StoragePool, name string) (v golibvirt.StorageVol, found bool, err error) {
	v, err = s.L.StorageVolLookupByName(p, name)
	if IsNotFound(err) {
		return v, false, nil
	}
	if err != nil {
		return v, false, lerr("looking up volume "+name+" in pool "+s.Pool, err)
	}
	return v, true, nil
}

// Base is a finished base disk.
type Base struct {
	Name      string  `json:"name"`
	Path      string  `json:"path"` // on the libvirt host
	Capacity  uint64  `json:"capacity"`
	Allocated uint64  `json:"allocated"`
	Key       BaseKey `json:"key"`
}

// FindBase returns the finished base of k, if the pool has one.
func (s *Store) FindBase(p golibvirt.StoragePool, k BaseKey) (Base, bool, error) {
	name := k.BaseName()
	v, ok, err := s.Lookup(p, name)
	if err != nil || !ok {
		return Base{}, false, err
	}
	got, err := s.readKey(p, keyName(name))
	if err != nil {
		return Base{}, false, err
	}
	if got == nil || got.Hash() != k.Hash() {
		return Base{}, false, nil // unfinished, or not what its name says
	}
	b, err := s.describe(v, *got)
	return b, err == nil, err
}

func (s *Store) describe(v golibvirt.StorageVol, k BaseKey) (Base, error) {
	path, err := s.L.StorageVolGetPath(v)
	if err != nil {
		return Base{}, lerr("reading the path of volume "+v.Name, err)
	}
	_, capacity, alloc, err := s.L.StorageVolGetInfo(v)
	if err != nil {
		return Base{}, lerr("reading volume "+v.Name, err)
	}
	return Base{Name: v.Name, Path: path, Capacity: capacity, Allocated: alloc, Key: k}, nil
}

// readKey reads a base's key file; nil when there is none (or it is not a
// valid key: the pool's contents are data, not trusted).
func (s *Store) readKey(p golibvirt.StoragePool, name string) (*BaseKey, error) {
	v, ok, err := s.Lookup(p, name)
	if err != nil || !ok {
		return nil, err
	}
	_, capacity, _, err := s.L.StorageVolGetInfo(v)
	if err != nil {
		return nil, lerr("reading volume "+name, err)
	}
	if capacity == 0 || capacity > maxKeyFile {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := s.L.StorageVolDownload(v, &buf, 0, capacity, 0); err != nil {
		return nil, lerr("downloading "+name, err)
	}
	var k BaseKey
	dec := json.NewDecoder(io.LimitReader(&buf, maxKeyFile))
	dec.DisallowUnknownFields()
	if dec.Decode(&k) != nil || k.Version != keyVersion {
		return nil, nil
	}
	return &k, nil
}

// Upload makes the base of k from r (size bytes of qcow2, virtual size
// capacity) through libvirt's stream, then writes its key file. A failed
// upload removes what it made.
func (s *Store) Upload(p golibvirt.StoragePool, k BaseKey, r io.Reader, size, capacity uint64) (b Base, err error) {
	name := k.BaseName()
	// Leftovers of an unfinished upload (no key file) go first.
	if err := s.Delete(p, keyName(name)); err != nil {
		return b, err
	}
	if err := s.Delete(p, name); err != nil {
		return b, err
	}
	x, err := BaseXML(name, capacity)
	if err != nil {
		return b, err
	}
	v, err := s.L.StorageVolCreateXML(p, x, 0)
	if err != nil {
		return b, lerr("creating volume "+name+" in pool "+s.Pool, err)
	}
	defer func() {
		if err != nil {
			_ = s.Delete(p, keyName(name))
			_ = s.Delete(p, name)
		}
	}()
	if err := s.L.StorageVolUpload(v, r, 0, size, 0); err != nil {
		return b, lerr("uploading the base disk into volume "+name, err)
	}
	kb, _ := json.Marshal(k)
	kx, err := RawXML(keyName(name), uint64(len(kb)))
	if err != nil {
		return b, err
	}
	kv, err := s.L.StorageVolCreateXML(p, kx, 0)
	if err != nil {
		return b, lerr("creating volume "+keyName(name), err)
	}
	if err := s.L.StorageVolUpload(kv, bytes.NewReader(kb), 0, uint64(len(kb)), 0); err != nil {
		return b, lerr("uploading "+keyName(name), err)
	}
	return s.describe(v, k)
}

// Clone makes a VM's copy-on-write disk on base.
func (s *Store) Clone(p golibvirt.StoragePool, vm string, base Base, capacity uint64) (string, error) {
	name := CloneName(vm)
	capacity = max(capacity, base.Capacity)
	x, err := CloneXML(name, capacity, base.Path)
	if err != nil {
		return "", err
	}
	v, err := s.L.StorageVolCreateXML(p, x, 0)
	if err != nil {
		return "", lerr("creating the disk "+name+" of "+vm+" in pool "+s.Pool, err)
	}
	path, err := s.L.StorageVolGetPath(v)
	if err != nil {
		_ = s.Delete(p, name)
		return "", lerr("reading the path of volume "+name, err)
	}
	return path, nil
}

// Swap makes a VM's swap volume of size bytes and writes header (the
// swap area's first page) at its start through libvirt's stream, so that a
// remote host needs no mkswap. A failure removes the volume.
func (s *Store) Swap(p golibvirt.StoragePool, vm string, size uint64, header []byte) (path string, err error) {
	name := SwapName(vm)
	x, err := SwapXML(name, size)
	if err != nil {
		return "", err
	}
	v, err := s.L.StorageVolCreateXML(p, x, 0)
	if err != nil {
		return "", lerr("creating the swap volume "+name+" of "+vm+" in pool "+s.Pool, err)
	}
	defer func() {
		if err != nil {
			_ = s.Delete(p, name)
		}
	}()
	if err := s.L.StorageVolUpload(v, bytes.NewReader(header), 0, uint64(len(header)), 0); err != nil {
		return "", lerr("writing the swap header into "+name, err)
	}
	path, err = s.L.StorageVolGetPath(v)
	if err != nil {
		return "", lerr("reading the path of volume "+name, err)
	}
	return path, nil
}

// Delete removes a volume; a missing one is fine.
func (s *Store) Delete(p golibvirt.StoragePool, name string) error {
	v, ok, err := s.Lookup(p, name)
	if err != nil || !ok {
		return err
	}
	if err := s.L.StorageVolDelete(v, 0); err != nil && !IsNotFound(err) {
		return lerr("deleting volume "+name+" from pool "+s.Pool, err)
	}
	return nil
}

// Bases lists the finished bases in the pool, by name.
func (s *Store) Bases(p golibvirt.StoragePool) ([]Base, error) {
	vols, _, err := s.L.StoragePoolListAllVolumes(p, 1, 0)
	if err != nil {
		return nil, lerr("listing volumes of pool "+s.Pool, err)
	}
	var out []Base
	for _, v := range vols {
		if !IsBaseName(v.Name) {
			continue
		}
		k, err := s.readKey(p, keyName(v.Name))
		if err != nil {
			return nil, err
		}
		if k == nil || k.BaseName() != v.Name {
			continue
		}
		b, err := s.describe(v, *k)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteBase removes a base and its key file (the key first: a base without
// it is never used again, whatever happens next).
func (s *Store) DeleteBase(p golibvirt.StoragePool, name string) error {
	if !IsBaseName(name) {
		return fmt.Errorf("%s is not a bcvk base disk", name)
	}
	if err := s.Delete(p, keyName(name)); err != nil {
		return err
	}
	return s.Delete(p, name)
}

// BackedBy maps a backing file's path to the pool's volumes on it.
func (s *Store) BackedBy(p golibvirt.StoragePool) (map[string][]string, error) {
	vols, _, err := s.L.StoragePoolListAllVolumes(p, 1, 0)
	if err != nil {
		return nil, lerr("listing volumes of pool "+s.Pool, err)
	}
	out := map[string][]string{}
	for _, v := range vols {
		if IsBaseName(v.Name) || strings.HasSuffix(v.Name, keySuffix) {
			continue
		}
		x, err := s.L.StorageVolGetXMLDesc(v, 0)
		if IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, lerr("reading volume "+v.Name, err)
		}
		var vol libvirtxml.StorageVolume
		if vol.Unmarshal(x) != nil || vol.BackingStore == nil || vol.BackingStore.Path == "" {
			continue
		}
		out[vol.BackingStore.Path] = append(out[vol.BackingStore.Path], v.Name)
	}
	return out, nil
}
