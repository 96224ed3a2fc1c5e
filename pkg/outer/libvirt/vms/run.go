package vms

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/bcvk/bcvk/pkg/credential"
	"github.com/bcvk/bcvk/pkg/diskimage"
	"github.com/bcvk/bcvk/pkg/inner/swap"
	"github.com/bcvk/bcvk/pkg/outer/libvirt/conn"
	"github.com/bcvk/bcvk/pkg/outer/libvirt/domain"
	"github.com/bcvk/bcvk/pkg/outer/libvirt/storage"
	"github.com/bcvk/bcvk/pkg/outer/progress"
	"github.com/bcvk/bcvk/pkg/outer/vm"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/sshkey"
)

// Bind is a --bind or --ro-bind share: a directory on the libvirt host
// mounted at Guest by the guest's systemd (fstab.extra credential).
type Bind struct {
	Host, Guest string
	ReadOnly    bool
}

// HostStorage shares the libvirt host's container storage read-only with
// the guest's podman (--bind-storage-ro; the libvirt host is this machine).
type HostStorage struct {
	GraphRoot string
	// Conf is the image's storage.conf with the share added as an
	// additional image store (storageconf.Merge), written at every boot.
	Conf []byte
}

// HostStorageDir is where the guest mounts it, as in ephemeral VMs.
const HostStorageDir = "/run/bcvk/host-storage"

const hostStorageTag = "bcvk-host-storage"

// Port is a --port HOST:GUEST forward on the libvirt host's loopback.
type Port struct{ Host, Guest uint16 }

// RunOptions are a new VM's.
type RunOptions struct {
	Name      string
	MemoryMiB uint64
	VCPUs     uint
	// Accel is auto, kvm or tcg.
	Accel    string
	Firmware domain.Firmware
	// DiskSize is the clone's virtual size (at least the base's).
	DiskSize uint64
	Ports    []Port
	Binds    []Bind
	Labels   map[string]string
	Storage  *HostStorage
	// DiskFiles are the user's files (--mount-disk-file), checked by the
	// caller, on the libvirt host (this machine). Nothing of them is
	// recorded for rm: they are the user's, and stay.
	DiskFiles []spec.AttachedDisk
	// SwapBytes, when not 0, gives the VM a swap volume in the pool
	// (--add-swap), removed with the VM.
	SwapBytes int64
	// Network is "user" (QEMU's SLIRP with hostfwd, the default) or
	// "passt" (libvirt's passt backend, where the host's passt is recent).
	Network string
	Version string
	// Base says which base the VM is made on; MakeBase makes it when the
	// pool has none (bcvk's to-disk, then an upload).
	Base     storage.BaseKey
	MakeBase func(ctx context.Context, dir string) (path string, err error)
	Replace  bool
	Progress progress.Mode
}

// Created is what Run made.
type Created struct {
	VM       VM
	BaseMade bool
	Clone    time.Duration
}

var guestPathRE = regexp.MustCompile(`^/[^\x00-\x20\\\x7f]*$`)

// Run makes and starts a VM. On any failure (a signal too) it removes what
// it made: domain, clone and key; a finished base stays for the next VM.
func (m *Manager) Run(ctx context.Context, o RunOptions, status *progress.Status, errOut io.Writer) (c Created, err error) {
	var cl vm.Cleanups
	defer func() { err = cl.Finish(err) }()
	if err := domain.ValidName(o.Name); err != nil {
		return c, err
	}
	for _, b := range o.Binds {
		if !guestPathRE.MatchString(b.Guest) || filepath.Clean(b.Guest) != b.Guest || b.Guest == "/" {
			return c, fmt.Errorf("--bind %s:%s: the guest path must be a clean absolute path without spaces", b.Host, b.Guest)
		}
	}
	status.Start("Connecting to " + m.C.URI().String())
	var old *VM
	if d, err := m.L().DomainLookupByName(o.Name); err == nil {
		v, derr := m.describe(d)
		if errors.Is(derr, domain.ErrNotBcvk) {
			return c, fmt.Errorf("a domain named %s exists on %s and bcvk did not make it: choose another --name", o.Name, m.C.URI().String())
		}
		if derr != nil {
			return c, derr
		}
		if !o.Replace {
			return c, fmt.Errorf("a VM named %s exists on %s: choose another --name, remove it (bcvk libvirt rm -f %s) or pass --replace", o.Name, m.C.URI().String(), o.Name)
		}
		// Removed only once the new VM's base is there: a failed replace
		// leaves the old VM.
		old = &v
	} else if !storage.IsNotFound(err) {
		return c, lerr("looking up domain "+o.Name, err)
	}
	typ, err := m.domainType(o.Accel)
	if err != nil {
		return c, err
	}
	network, err := m.network(typ, o.Network)
	if err != nil {
		return c, err
	}

	// The pool is made only when a base goes into it: a run that fails
	// before (a failed to-disk) leaves no pool behind.
	pool, ok, err := m.Store.Find()
	if err != nil {
		return c, err
	}
	var base storage.Base
	if ok {
		if err := m.Store.Refresh(pool); err != nil {
			return c, err
		}
		if base, ok, err = m.Store.FindBase(pool, o.Base); err != nil {
			return c, err
		}
	}
	if !ok {
		status.End(true)
		fmt.Fprintf(errOut, "No base disk for %s (%s) in pool %s yet: making one with bcvk to-disk\n", o.Base.Image, o.Base.Hash(), m.Store.Pool)
		if pool, base, err = m.makeBase(ctx, o, status, errOut); err != nil {
			return c, err
		}
		c.BaseMade = true
	}

	if old != nil {
		status.Start("Replacing " + o.Name)
		if err := m.Remove(ctx, *old, true); err != nil {
			return c, err
		}
	}
	status.Start("Cloning the base disk for " + o.Name)
	t0 := time.Now()
	clonePath, err := m.Store.Clone(pool, o.Name, base, o.DiskSize)
	if err != nil {
		return c, err
	}
	c.Clone = time.Since(t0)
	cl.Add(func(context.Context) error { return m.Store.Delete(pool, storage.CloneName(o.Name)) })

	uuid, err := newUUID()
	if err != nil {
		return c, err
	}
	pair, err := sshkey.Generate("bcvk-libvirt-" + o.Name)
	if err != nil {
		return c, err
	}
	keyPath := m.Keys.Private(uuid)
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return c, fmt.Errorf("making the key directory: %w", err)
	}
	cl.Add(func(context.Context) error { return m.Keys.Remove(uuid) })
	if err := pair.Write(keyPath); err != nil {
		return c, fmt.Errorf("writing the VM's SSH key: %w", err)
	}
	var swapPath string
	if o.SwapBytes > 0 {
		status.Start("Making the swap volume of " + o.Name)
		h, err := swap.NewHeader(o.SwapBytes)
		if err != nil {
			return c, err
		}
		if swapPath, err = m.Store.Swap(pool, o.Name, uint64(o.SwapBytes), h); err != nil {
			return c, err
		}
		cl.Add(func(context.Context) error { return m.Store.Delete(pool, storage.SwapName(o.Name)) })
	}
	creds, err := credentials(pair.Public, o.Binds, o.Storage, swapPath != "")
	if err != nil {
		return c, err
	}

	cfg := domain.Config{
		Name: o.Name, UUID: uuid, MemoryMiB: o.MemoryMiB, VCPUs: o.VCPUs, Type: typ, Firmware: o.Firmware,
		Disk: domain.Disk{Path: clonePath, Format: "qcow2"}, Network: network,
		ConsoleLog: m.consoleLog(o.Name), Credentials: creds,
		Metadata: domain.Metadata{
			Image: o.Base.Image, Digest: o.Base.Digest, BaseDisk: base.Name, Version: o.Version,
			Created: time.Now().UTC().Truncate(time.Second), Labels: o.Labels,
			Install: domain.InstallOptions{Filesystem: o.Base.Filesystem, RootSize: o.Base.RootSize,
				DiskSize: o.Base.DiskSize, KernelArgs: o.Base.KernelArgs},
		},
	}
	for _, d := range o.DiskFiles {
		cfg.Extra = append(cfg.Extra, domain.ExtraDisk{Path: d.Host, Format: d.Format, Serial: d.Serial, ReadOnly: d.ReadOnly})
	}
	if swapPath != "" {
		cfg.Extra = append(cfg.Extra, domain.ExtraDisk{Path: swapPath, Format: "raw", Serial: spec.SwapSerial})
	}
	for i, b := range o.Binds {
		cfg.Shares = append(cfg.Shares, domain.Share{Source: b.Host, Tag: shareTag(i), ReadOnly: b.ReadOnly})
	}
	if o.Storage != nil {
		cfg.Shares = append(cfg.Shares, domain.Share{Source: o.Storage.GraphRoot, Tag: hostStorageTag, ReadOnly: true})
	}
	for _, p := range o.Ports {
		cfg.Ports = append(cfg.Ports, domain.PortForward{HostPort: p.Host, GuestPort: p.Guest})
	}

	status.Start("Starting " + o.Name)
	var dom golibvirt.Domain
	defined := false
	cl.Add(func(context.Context) error {
		if !defined {
			return nil
		}
		_ = m.L().DomainDestroy(dom)
		err := m.L().DomainUndefineFlags(dom, golibvirt.DomainUndefineNvram|golibvirt.DomainUndefineManagedSave)
		if storage.IsNotFound(err) {
			return nil
		}
		return lerr("undefining domain "+o.Name, err)
	})
	// The SSH port is chosen before QEMU (or passt) binds it, so another
	// process can take it in between: then another port, a few times.
	used, err := m.usedPorts()
	if err != nil {
		return c, err
	}
	for _, p := range o.Ports {
		used[p.Host] = true
	}
	logStart := fileSize(cfg.ConsoleLog)
	for attempt := 0; ; attempt++ {
		if cfg.SSHPort, err = m.freePort(used); err != nil {
			return c, err
		}
		x, err := domain.XML(cfg)
		if err != nil {
			return c, err
		}
		if dom, err = m.L().DomainDefineXMLFlags(x, golibvirt.DomainDefineValidate); err != nil {
			return c, lerr("defining domain "+o.Name, err)
		}
		defined = true
		err = m.L().DomainCreate(dom)
		if err == nil {
			break
		}
		if attempt < 4 && addrInUse(err) {
			used[cfg.SSHPort] = true
			continue
		}
		if cfg.Type == domain.TypeKVM && o.Accel == "auto" {
			// QEMU refused KVM (with host-passthrough, nested KVM can
			// abort on an MSR): TCG then.
			why := strings.TrimSpace(err.Error())
			fmt.Fprintf(errOut, "KVM could not start %s (%.200s): using TCG software emulation\n", o.Name, why)
			if HostIsLocal(m.C.URI()) {
				vm.CurrentHost().RememberKVMUnusable("libvirt VM " + o.Name + ": " + why)
			}
			cfg.Type = domain.TypeQEMU
			continue
		}
		return c, lerr("starting domain "+o.Name, err)
	}
	if cfg.Type == domain.TypeKVM && o.Accel == "auto" && HostIsLocal(m.C.URI()) {
		status.Start("Checking that KVM boots " + o.Name)
		if ok, why := m.watchKVM(ctx, dom, cfg.ConsoleLog, logStart); !ok {
			status.End(false)
			fmt.Fprintf(errOut, "KVM did not boot %s (%s): starting it again with TCG software emulation; later VMs on this host use TCG at once\n", o.Name, why)
			vm.CurrentHost().RememberKVMUnusable("libvirt VM " + o.Name + ": " + why)
			_ = m.L().DomainDestroy(dom)
			cfg.Type = domain.TypeQEMU
			x, err := domain.XML(cfg)
			if err != nil {
				return c, err
			}
			if dom, err = m.L().DomainDefineXMLFlags(x, golibvirt.DomainDefineValidate); err != nil {
				return c, lerr("defining domain "+o.Name, err)
			}
			if err := m.L().DomainCreate(dom); err != nil {
				return c, lerr("starting domain "+o.Name, err)
			}
		}
	}
	v, err := m.describe(dom)
	if err != nil {
		return c, err
	}
	cl = nil // the VM is made; nothing to undo
	status.End(true)
	c.VM = v
	return c, nil
}

func (m *Manager) makeBase(ctx context.Context, o RunOptions, status *progress.Status, errOut io.Writer) (golibvirt.StoragePool, storage.Base, error) {
	var pool golibvirt.StoragePool
	dir, err := baseWorkDir()
	if err != nil {
		return pool, storage.Base{}, err
	}
	defer os.RemoveAll(dir)
	path, err := o.MakeBase(ctx, dir)
	if err != nil {
		return pool, storage.Base{}, fmt.Errorf("making the base disk: %w", err)
	}
	pool, created, err := m.Store.Ensure()
	if err != nil {
		return pool, storage.Base{}, err
	}
	b, err := m.upload(ctx, pool, o, path, status, errOut)
	if err != nil && created {
		// A pool made for this base goes with it.
		if rerr := m.Store.RemovePool(pool); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return pool, b, err
}

// upload puts the qcow2 at path into the pool as o's base.
func (m *Manager) upload(ctx context.Context, pool golibvirt.StoragePool, o RunOptions, path string, status *progress.Status, errOut io.Writer) (storage.Base, error) {
	f, err := os.Open(path)
	if err != nil {
		return storage.Base{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return storage.Base{}, err
	}
	vsize, err := qcow2Size(f)
	if err != nil {
		return storage.Base{}, fmt.Errorf("the base disk %s: %w", path, err)
	}
	status.Start(fmt.Sprintf("Uploading the base disk (%d MiB) into pool %s through libvirt's stream", fi.Size()>>20, m.Store.Pool))
	t0 := time.Now()
	b, err := m.Store.Upload(pool, o.Base, ctxReader{ctx, f}, uint64(fi.Size()), vsize)
	if err != nil {
		if ctx.Err() != nil {
			return b, ctx.Err()
		}
		return b, err
	}
	status.End(true)
	fmt.Fprintf(errOut, "Uploaded base disk %s (%d MiB) into pool %s on %s through libvirt's stream in %.0fs\n",
		b.Name, fi.Size()>>20, m.Store.Pool, m.C.URI().String(), time.Since(t0).Seconds())
	return b, nil
}

// baseWorkDir is a private directory for to-disk's output on the client,
// on disk rather than a tmpfs: $XDG_CACHE_HOME/bcvk/libvirt.
func baseWorkDir() (string, error) {
	d := os.Getenv("XDG_CACHE_HOME")
	if d == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		d = filepath.Join(h, ".cache")
	}
	d = filepath.Join(d, "bcvk", "libvirt")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", err
	}
	return os.MkdirTemp(d, "base-")
}

// qcow2Size reads the virtual size from a qcow2 header.
func qcow2Size(f *os.File) (uint64, error) {
	h, err := diskimage.Read(f)
	if err != nil {
		return 0, err
	}
	if h.Format != diskimage.QCOW2 {
		return 0, errors.New("not a qcow2 file")
	}
	return h.VirtualSize, nil
}

// shareTag is the virtiofs tag of the i-th share.
func shareTag(i int) string { return "bcvk-bind-" + strconv.Itoa(i) }

// SwapFstabLine activates the swap volume: systemd's fstab generator reads
// fstab.extra (systemd 254 and later); nofail, so that a guest without the
// disk still boots.
const SwapFstabLine = "/dev/disk/by-id/virtio-" + spec.SwapSerial + " none swap defaults,nofail 0 0\n"

// credentials are the VM's systemd credentials: root's key (read by sshd
// through bcvk's drop-in), the shares' and the swap's fstab lines, and with
// host storage the guest's storage.conf.
func credentials(pub string, binds []Bind, hs *HostStorage, withSwap bool) ([]string, error) {
	tmpfiles := credential.AuthorizedKeyTmpfiles(pub, "root")
	var fstab strings.Builder
	for i, b := range binds {
		opts := "rw"
		if b.ReadOnly {
			opts = "ro"
		}
		// nofail: a share that cannot mount must not keep the VM
		// from booting (and from SSH, which says why).
		fmt.Fprintf(&fstab, "%s %s virtiofs %s,nofail 0 0\n", shareTag(i), b.Guest, opts)
	}
	if withSwap {
		fstab.WriteString(SwapFstabLine)
	}
	if hs != nil {
		fmt.Fprintf(&fstab, "%s %s virtiofs ro,nofail 0 0\n", hostStorageTag, HostStorageDir)
		// f+: rewritten at every boot from what the host had at run.
		tmpfiles += "f+ /etc/containers/storage.conf 0644 root root - " + tmpfilesEscape(string(hs.Conf)) + "\n"
	}
	tmp, err := credential.SMBIOS("tmpfiles.extra", []byte(tmpfiles))
	if err != nil {
		return nil, err
	}
	out := []string{tmp}
	if fstab.Len() > 0 {
		f, err := credential.SMBIOS("fstab.extra", []byte(fstab.String()))
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// tmpfilesEscape makes s one tmpfiles.d argument: tmpfiles reads C-style
// escapes there, and a line ends at a newline.
func tmpfilesEscape(s string) string {
	var b strings.Builder
	for _, r := range []byte(s) {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteByte(r)
		}
	}
	return b.String()
}

// domainType resolves --accel: kvm only when asked or when the libvirt
// host offers it and it is not known broken here.
func (m *Manager) domainType(accel string) (domain.Type, error) {
	switch accel {
	case "tcg":
		return domain.TypeQEMU, nil
	case "kvm":
		if !m.offers("kvm") {
			return "", fmt.Errorf("--accel kvm: the libvirt host %s offers no KVM domains (no usable /dev/kvm there): use --accel tcg", m.C.URI().String())
		}
		return domain.TypeKVM, nil
	}
	if m.offers("kvm") && !kvmKnownBroken(m) {
		return domain.TypeKVM, nil
	}
	return domain.TypeQEMU, nil
}

// kvmKnownBroken: on a local connection, bcvk's ephemeral VMs may have
// found KVM unusable in this host boot (nested KVM that hangs).
func kvmKnownBroken(m *Manager) bool {
	if m.C.URI().Remote() {
		return false
	}
	_, failed := vm.CurrentHost().KVMVerdict()
	return failed
}

func (m *Manager) offers(virtType string) bool {
	_, err := m.L().ConnectGetDomainCapabilities(golibvirt.OptString{}, golibvirt.OptString{"x86_64"}, golibvirt.OptString{}, golibvirt.OptString{virtType}, 0)
	return err == nil
}

// network resolves --network. SLIRP is the default: Debian 12's passt
// (2023) binds the forward but never completes an inbound TCP handshake
// with libvirt 11, and libvirt cannot tell.
func (m *Manager) network(t domain.Type, want string) (domain.Network, error) {
	if want != "passt" {
		return domain.NetworkSlirp, nil
	}
	x, err := m.L().ConnectGetDomainCapabilities(golibvirt.OptString{}, golibvirt.OptString{"x86_64"}, golibvirt.OptString{}, golibvirt.OptString{string(t)}, 0)
	if err != nil {
		return "", lerr("reading the domain capabilities of "+m.C.URI().String(), err)
	}
	var caps libvirtxml.DomainCaps
	if err := caps.Unmarshal(x); err == nil && caps.Devices != nil && caps.Devices.Interface != nil {
		for _, e := range caps.Devices.Interface.Enums {
			if e.Name != "backendType" {
				continue
			}
			for _, v := range e.Values {
				if v == "passt" {
					return domain.NetworkPasst, nil
				}
			}
		}
	}
	return "", fmt.Errorf("--network passt: the libvirt host %s offers no passt backend (install passt there, or use --network user)", m.C.URI().String())
}

// consoleLog is where virtlogd copies the serial console on the libvirt
// host.
func (m *Manager) consoleLog(name string) string {
	if m.C.URI().Mode == conn.ModeSession {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, ".cache", "libvirt", "qemu", "log", name+"-console.log")
		}
	}
	return "/var/log/libvirt/qemu/" + name + "-console.log"
}

// usedPorts are the forwards of bcvk's other VMs on this libvirt host.
func (m *Manager) usedPorts() (map[uint16]bool, error) {
	vms, err := m.List()
	if err != nil {
		return nil, err
	}
	used := map[uint16]bool{}
	for _, v := range vms {
		used[v.Meta.SSHPort] = true
	}
	return used, nil
}

// Port range for SSH forwards on the libvirt host's loopback.
const portLow, portHigh = 20000, 60000

// freePort picks a port: on the local host one that is free now; on a
// remote one a random one (a clash is retried at start).
func (m *Manager) freePort(used map[uint16]bool) (uint16, error) {
	for range 64 {
		n, err := rand.Int(rand.Reader, big.NewInt(portHigh-portLow))
		if err != nil {
			return 0, err
		}
		p := uint16(portLow + n.Int64())
		if used[p] {
			continue
		}
		if !HostIsLocal(m.C.URI()) {
			return p, nil
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(int(p)))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, errors.New("found no free port for SSH on the libvirt host")
}

// HostIsLocal reports whether the libvirt host is this machine.
func HostIsLocal(u conn.URI) bool { return u.OnThisHost() }

func addrInUse(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "address already in use") || strings.Contains(s, "could not set up host forwarding")
}

func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

// KVMProbeTimeout bounds the wait for a KVM guest's first sign of a booting
// kernel or systemd on its console. Where nested KVM is broken the kernel
// hangs right after its real-mode setup and prints nothing at all.
const KVMProbeTimeout = 90 * time.Second

// bootSigns are console lines only a running kernel or systemd print (the
// firmware and the boot loader may print before a kernel that then hangs).
var bootSigns = []string{"Linux version", "[    0.", "systemd[1]", "Welcome to", "login:"}

// watchKVM reads the console log (local connections only) from offset
// until a boot sign, the domain's end, or the timeout.
func (m *Manager) watchKVM(ctx context.Context, dom golibvirt.Domain, logPath string, offset int64) (bool, string) {
	f, err := os.Open(logPath)
	if err != nil {
		return true, "" // cannot tell (not ours to read): trust libvirt's choice
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, KVMProbeTimeout)
	defer cancel()
	t := time.NewTicker(statePoll)
	defer t.Stop()
	buf := make([]byte, 64<<10)
	var seen []byte
	for {
		n, _ := f.ReadAt(buf, offset)
		offset += int64(n)
		seen = append(seen, buf[:n]...)
		for _, sign := range bootSigns {
			if bytes.Contains(seen, []byte(sign)) {
				return true, ""
			}
		}
		if len(seen) > 1<<20 {
			seen = seen[len(seen)-4096:]
		}
		st, _, err := m.L().DomainGetState(dom, 0)
		if err == nil && (golibvirt.DomainState(st) == golibvirt.DomainShutoff || golibvirt.DomainState(st) == golibvirt.DomainCrashed) {
			return false, "the domain ended (" + State(st) + ") before its kernel printed anything"
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return false, fmt.Sprintf("no kernel or systemd output on its console within %s", KVMProbeTimeout)
			}
			return true, ""
		case <-t.C:
		}
	}
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}
