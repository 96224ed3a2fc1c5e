// Package vms runs bcvk's persistent VMs on libvirt: a domain per VM,
// defined from libvirtxml structs with bcvk's metadata, on a copy-on-write
// clone of a base disk that bcvk's own to-disk made once per image digest
// and install options. Domains bcvk did not make are never touched.
package vms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/bcvk/bcvk/pkg/outer/libvirt/conn"
	"github.com/bcvk/bcvk/pkg/outer/libvirt/domain"
	"github.com/bcvk/bcvk/pkg/outer/libvirt/storage"
	"github.com/bcvk/bcvk/pkg/spec"
)

// Named timeouts a user can change with flags.
const (
	// DefaultStopTimeout is how long stop waits for the guest to power off
	// after the ACPI power button before it pulls the plug.
	DefaultStopTimeout = 2 * time.Minute
	// DefaultSSHTimeout bounds the wait for the guest's sshd (first boot
	// under TCG generates host keys).
	DefaultSSHTimeout = 10 * time.Minute
	// statePoll is how often a state change is looked for: libvirt's event
	// stream would need a second connection for little gain.
	statePoll = 500 * time.Millisecond
)

// Manager works on one libvirt connection and one pool.
type Manager struct {
	C     *conn.Conn
	Store *storage.Store
	// Keys is the client-side directory of the VMs' private keys.
	Keys KeyDir
}

// L is the RPC client.
func (m *Manager) L() *golibvirt.Libvirt { return m.C.L() }

func lerr(op string, err error) error { return conn.Wrap(op, err) }

// ErrNoVM says that no bcvk VM has the name.
var ErrNoVM = errors.New("no such bcvk VM")

// VM is one of bcvk's domains as list and inspect show it.
type VM struct {
	Name  string          `json:"name"`
	UUID  string          `json:"uuid"`
	State string          `json:"state"`
	Meta  domain.Metadata `json:"metadata"`
	SSH   SSHInfo         `json:"ssh"`
	dom   golibvirt.Domain
}

// SSHInfo is how to reach the VM.
type SSHInfo struct {
	// Host is where the forwarded port listens: the libvirt host's loopback.
	Host    string `json:"host"`
	Port    uint16 `json:"port"`
	User    string `json:"user"`
	KeyPath string `json:"keyPath"`
	// Command runs a shell in the VM (bcvk libvirt ssh).
	Command []string `json:"command"`
}

// State names libvirt's domain states as virsh does.
func State(s int32) string {
	switch golibvirt.DomainState(s) {
	case golibvirt.DomainRunning:
		return "running"
	case golibvirt.DomainBlocked:
		return "idle"
	case golibvirt.DomainPaused:
		return "paused"
	case golibvirt.DomainShutdown:
		return "in shutdown"
	case golibvirt.DomainShutoff:
		return "shut off"
	case golibvirt.DomainCrashed:
		return "crashed"
	case golibvirt.DomainPmsuspended:
		return "suspended"
	}
	return "no state"
}

func uuidString(u golibvirt.UUID) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// describe reads a domain; ErrNotBcvk for one bcvk did not make.
func (m *Manager) describe(d golibvirt.Domain) (VM, error) {
	x, err := m.L().DomainGetXMLDesc(d, 0)
	if err != nil {
		return VM{}, lerr("reading domain "+d.Name, err)
	}
	meta, err := domain.ParseMetadata(x)
	if err != nil {
		return VM{}, err
	}
	st, _, err := m.L().DomainGetState(d, 0)
	if err != nil {
		return VM{}, lerr("reading the state of domain "+d.Name, err)
	}
	v := VM{Name: d.Name, UUID: uuidString(d.UUID), State: State(st), Meta: meta, dom: d}
	v.SSH = SSHInfo{Host: "127.0.0.1", Port: meta.SSHPort, User: "root", KeyPath: m.Keys.Private(v.UUID)}
	return v, nil
}

// List returns bcvk's domains by name, skipping the others.
func (m *Manager) List() ([]VM, error) {
	ds, _, err := m.L().ConnectListAllDomains(1, 0)
	if err != nil {
		return nil, lerr("listing domains on "+m.C.URI().String(), err)
	}
	var out []VM
	for _, d := range ds {
		v, err := m.describe(d)
		switch {
		case errors.Is(err, domain.ErrNotBcvk):
			continue
		case errors.Is(err, domain.ErrInvalid):
			// Someone wrote metadata in our namespace that we would not:
			// not ours to touch; say so once.
			fmt.Fprintf(os.Stderr, "warning: domain %q has unreadable bcvk metadata (%v): skipped\n", d.Name, err)
			continue
		case storage.IsNotFound(err):
			continue // went away meanwhile
		case err != nil:
			return nil, err
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get finds the bcvk VM name.
func (m *Manager) Get(name string) (VM, error) {
	if err := domain.ValidName(name); err != nil {
		return VM{}, fmt.Errorf("%q is not a VM name: %w", name, err)
	}
	d, err := m.L().DomainLookupByName(name)
	if storage.IsNotFound(err) {
		return VM{}, fmt.Errorf("%w %q on %s (see `bcvk libvirt list`)", ErrNoVM, name, m.C.URI().String())
	}
	if err != nil {
		return VM{}, lerr("looking up domain "+name, err)
	}
	v, err := m.describe(d)
	if errors.Is(err, domain.ErrNotBcvk) {
		return VM{}, fmt.Errorf("domain %q on %s was not made by bcvk: bcvk leaves it alone (use virsh)", name, m.C.URI().String())
	}
	return v, err
}

// Running reports whether QEMU may still run the domain: anything but
// shut off or crashed (a suspended guest's QEMU lives on).
func (v VM) Running() bool {
	return v.State != "shut off" && v.State != "crashed"
}

// Start boots a stopped VM.
func (m *Manager) Start(v VM) error {
	if v.Running() {
		return nil
	}
	return lerr("starting domain "+v.Name, m.L().DomainCreate(v.dom))
}

// Stop powers the VM off: the ACPI power button, then, after timeout (or
// at once with force), libvirt's destroy.
func (m *Manager) Stop(ctx context.Context, v VM, force bool, timeout time.Duration) error {
	if !v.Running() {
		return nil
	}
	if !force {
		err := m.L().DomainShutdownFlags(v.dom, golibvirt.DomainShutdownAcpiPowerBtn)
		if err != nil && !isNotRunning(err) {
			return lerr("powering off domain "+v.Name, err)
		}
		if err == nil {
			off, err := m.waitOff(ctx, v.dom, timeout)
			if err != nil || off {
				return err
			}
			fmt.Fprintf(os.Stderr, "%s did not power off within %s: stopping it hard\n", v.Name, timeout)
		}
	}
	if err := m.L().DomainDestroy(v.dom); err != nil && !isNotRunning(err) {
		return lerr("stopping domain "+v.Name, err)
	}
	return nil
}

func isNotRunning(err error) bool { return conn.IsInvalidOperation(err) }

// waitOff waits until the domain is shut off.
func (m *Manager) waitOff(ctx context.Context, d golibvirt.Domain, timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(statePoll)
	defer t.Stop()
	for {
		st, _, err := m.L().DomainGetState(d, 0)
		if storage.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, lerr("reading the state of domain "+d.Name, err)
		}
		if golibvirt.DomainState(st) == golibvirt.DomainShutoff {
			return true, nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return false, nil
			}
			return false, ctx.Err()
		case <-t.C:
		}
	}
}

// Remove destroys (with force) and undefines the VM, deletes its clone and
// its private key. The base stays.
func (m *Manager) Remove(ctx context.Context, v VM, force bool) error {
	if v.Running() {
		if !force {
			return fmt.Errorf("%s is %s: stop it first (bcvk libvirt stop %s) or pass -f", v.Name, v.State, v.Name)
		}
		if err := m.L().DomainDestroy(v.dom); err != nil && !isNotRunning(err) && !storage.IsNotFound(err) {
			return lerr("stopping domain "+v.Name, err)
		}
	}
	// The clone and the swap volume are found by the domain's disks, in
	// whatever pool they are, and deleted only when their volume names are
	// this VM's: the user's disk files (--mount-disk-file) are never.
	clone, swapVol := m.diskPaths(v)
	flags := golibvirt.DomainUndefineNvram | golibvirt.DomainUndefineManagedSave | golibvirt.DomainUndefineSnapshotsMetadata | golibvirt.DomainUndefineCheckpointsMetadata
	if err := m.L().DomainUndefineFlags(v.dom, flags); err != nil && !storage.IsNotFound(err) {
		return lerr("undefining domain "+v.Name, err)
	}
	var errs []error
	for _, d := range []struct{ path, vol string }{{clone, storage.CloneName(v.Name)}, {swapVol, storage.SwapName(v.Name)}} {
		if d.path == "" {
			continue
		}
		vol, err := m.L().StorageVolLookupByPath(d.path)
		switch {
		case storage.IsNotFound(err):
		case err != nil:
			errs = append(errs, lerr("looking up the disk "+d.path+" of "+v.Name, err))
		case vol.Name == d.vol:
			if err := m.L().StorageVolDelete(vol, 0); err != nil && !storage.IsNotFound(err) {
				errs = append(errs, lerr("deleting the disk "+d.path+" of "+v.Name, err))
			}
		}
	}
	errs = append(errs, m.removeLeftovers(v.Name, v.UUID))
	return errors.Join(errs...)
}

// diskPaths are the files of the VM's first disk (its clone) and of its
// swap disk (serial bcvk-swap), where it has them.
func (m *Manager) diskPaths(v VM) (clone, swap string) {
	x, err := m.L().DomainGetXMLDesc(v.dom, golibvirt.DomainXMLInactive)
	if err != nil {
		return "", ""
	}
	return diskPathsOf(x)
}

func diskPathsOf(x string) (clone, swap string) {
	var d libvirtxml.Domain
	if d.Unmarshal(x) != nil || d.Devices == nil {
		return "", ""
	}
	for _, disk := range d.Devices.Disks {
		if disk.Device != "disk" || disk.Source == nil || disk.Source.File == nil {
			continue
		}
		switch {
		case clone == "":
			clone = disk.Source.File.File
		case disk.Serial == spec.SwapSerial && swap == "":
			swap = disk.Source.File.File
		}
	}
	return clone, swap
}

// removeLeftovers deletes a VM's clone, swap volume and key.
func (m *Manager) removeLeftovers(name, uuid string) error {
	var errs []error
	if p, ok, err := m.Store.Find(); err != nil {
		errs = append(errs, err)
	} else if ok {
		for _, vol := range []string{storage.CloneName(name), storage.SwapName(name)} {
			if err := m.Store.Delete(p, vol); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := m.Keys.Remove(uuid); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// BaseUse is a base disk with the VMs that use it.
type BaseUse struct {
	storage.Base
	UsedBy []string `json:"usedBy"`
}

// Bases lists the pool's bases and who uses them: a bcvk VM whose metadata
// names it, or any qcow2 in the pool backed by it.
func (m *Manager) Bases() ([]BaseUse, error) {
	p, ok, err := m.Store.Find()
	if err != nil || !ok {
		return nil, err
	}
	bs, err := m.Store.Bases(p)
	if err != nil {
		return nil, err
	}
	vms, err := m.List()
	if err != nil {
		return nil, err
	}
	backed, err := m.Store.BackedBy(p)
	if err != nil {
		return nil, err
	}
	out := make([]BaseUse, len(bs))
	for i, b := range bs {
		out[i].Base = b
		seen := map[string]bool{}
		for _, v := range vms {
			if v.Meta.BaseDisk == b.Name {
				seen[v.Name] = true
			}
		}
		for _, vol := range backed[b.Path] {
			name := strings.TrimSuffix(strings.TrimPrefix(vol, "bcvk-vm-"), ".qcow2")
			seen[name] = true
		}
		for n := range seen {
			out[i].UsedBy = append(out[i].UsedBy, n)
		}
		sort.Strings(out[i].UsedBy)
	}
	return out, nil
}

// Prune deletes the bases no VM uses, and returns their names.
func (m *Manager) Prune(dryRun bool) ([]string, error) {
	bs, err := m.Bases()
	if err != nil {
		return nil, err
	}
	p, _, err := m.Store.Find()
	if err != nil {
		return nil, err
	}
	var gone []string
	for _, b := range bs {
		if len(b.UsedBy) > 0 {
			continue
		}
		if !dryRun {
			if err := m.Store.DeleteBase(p, b.Name); err != nil {
				return gone, err
			}
		}
		gone = append(gone, b.Name)
	}
	return gone, nil
}

// ctxReader ends a stream when ctx ends (a signal during an upload).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// KeyDir keeps the VMs' private keys on the client, one directory per
// domain UUID (names can be reused), mode 0700, keys 0600.
type KeyDir string

// DefaultKeyDir is $XDG_DATA_HOME/bcvk/libvirt/keys.
func DefaultKeyDir() (KeyDir, error) {
	d := os.Getenv("XDG_DATA_HOME")
	if d == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding a place for SSH keys: %w", err)
		}
		d = filepath.Join(h, ".local", "share")
	}
	return KeyDir(filepath.Join(d, "bcvk", "libvirt", "keys")), nil
}

// Private is the private key file of the domain uuid.
func (k KeyDir) Private(uuid string) string { return filepath.Join(string(k), uuid, "id_ed25519") }

// Remove deletes the domain's keys; missing is fine.
func (k KeyDir) Remove(uuid string) error {
	if uuid == "" || strings.ContainsAny(uuid, "/.") {
		return nil
	}
	return os.RemoveAll(filepath.Join(string(k), uuid))
}
