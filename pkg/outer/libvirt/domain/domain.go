// Package domain builds the libvirt domain XML of a bcvk VM and reads bcvk's
// metadata back out of a domain's XML. It does no I/O: XML is a pure function
// of a Config, so the whole document is checked by golden tests, and
// ParseMetadata takes the XML that a (possibly remote, possibly hostile)
// libvirtd returned and trusts none of it.
package domain

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/bcvk/bcvk/pkg/credential"
	"libvirt.org/go/libvirtxml"
)

// Type is the libvirt domain type: "kvm" where /dev/kvm works on the libvirt
// host, "qemu" (TCG emulation) where it does not, as in CI.
type Type string

const (
	TypeKVM  Type = "kvm"
	TypeQEMU Type = "qemu"
)

// Firmware is what the VM boots with.
type Firmware string

const (
	FirmwareBIOS Firmware = "bios"
	FirmwareUEFI Firmware = "uefi"
)

// Debian's OVMF package (bookworm and trixie) ships these 4 MiB builds
// without Secure Boot; the .secboot variants need SMM and are not used here.
const (
	DefaultOVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	DefaultOVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Network selects how the guest's NIC reaches the libvirt host and how the
// SSH port (and any --port) is forwarded to the host's loopback.
type Network string

const (
	// NetworkPasst is <interface type='user'><backend type='passt'/> with
	// <portForward> elements: libvirt's own way, no custom argv. It needs
	// the passt binary on the libvirt host and a libvirt that accepts it
	// (see docs/libvirt-plan.md: Debian's 9.0.0 rejects it, 11.x takes it).
	NetworkPasst Network = "passt"
	// NetworkSlirp is QEMU's built-in user networking with hostfwd, given
	// through <qemu:commandline>, as libvirt has no XML for SLIRP port
	// forwards. libvirt marks such a domain "tainted: custom-argv".
	NetworkSlirp Network = "slirp"
)

// Disk is the VM's writable disk: in bcvk, a qcow2 clone whose backing file
// is the shared base disk of the image.
type Disk struct {
	Path   string // absolute path on the libvirt host
	Format string // "qcow2" or "raw"
}

// ExtraDisk is a further virtio disk after the VM's own: a user's file
// (--mount-disk-file) or the VM's swap volume (--add-swap). The guest finds
// it as /dev/disk/by-id/virtio-SERIAL.
type ExtraDisk struct {
	Path     string // absolute path on the libvirt host
	Format   string // "qcow2" or "raw"
	Serial   string
	ReadOnly bool
}

// PortForward forwards HostAddr:HostPort on the libvirt host to GuestPort.
type PortForward struct {
	HostAddr  netip.Addr // zero value means 127.0.0.1
	HostPort  uint16
	GuestPort uint16
}

// Share is a host directory exported to the guest with virtiofs.
type Share struct {
	Source   string // absolute directory on the libvirt host
	Tag      string // virtiofs tag the guest mounts by
	ReadOnly bool
}

// Config is everything the domain XML is made of.
type Config struct {
	Name      string
	UUID      string // empty: libvirt assigns one
	MemoryMiB uint64
	VCPUs     uint
	Type      Type
	Firmware  Firmware
	// OVMFCode and OVMFVars default to Debian's paths; used with UEFI only.
	OVMFCode, OVMFVars string
	// NVRAM is the per-VM copy of the UEFI variables; empty lets libvirt
	// put it under its nvram directory (/var/lib/libvirt/qemu/nvram/).
	NVRAM string
	Disk  Disk
	// Extra disks are vdb, vdc, ... in this order.
	Extra []ExtraDisk
	// Network defaults to NetworkPasst.
	Network Network
	// SSHPort is the host loopback port forwarded to the guest's port 22.
	SSHPort uint16
	// Ports are further forwards (--port HOST:GUEST).
	Ports  []PortForward
	Shares []Share
	// VSock adds a virtio-vsock device with a CID libvirt picks.
	VSock bool
	// ConsoleLog is the file on the libvirt host that the serial console is
	// copied to (written by virtlogd).
	ConsoleLog string
	// Credentials are systemd credentials as SMBIOS OEM strings
	// ("io.systemd.credential.binary:NAME=BASE64", credential.SMBIOS): the
	// VM's public key and its mounts, read by the guest's systemd at every
	// boot. Public data only: anyone who can read the domain sees them.
	Credentials []string
	// Metadata is stored under bcvk's namespace in <metadata>. Its SSHPort
	// is set from Config.SSHPort.
	Metadata Metadata
}

// Limits on what XML accepts. They catch typos and overflow (a size given in
// bytes where MiB were meant), not what a host can actually provide.
const (
	MaxMemoryMiB = 4 << 20 // 4 TiB
	MinMemoryMiB = 256
	MaxVCPUs     = 1024
	MaxPorts     = 64
	MaxShares    = 32
	// MaxExtraDisks: vdb to vdz.
	MaxExtraDisks = 25
	maxPathLen    = 4096
	maxTagLen     = 36 // virtio-fs: the tag field of the device config is 36 bytes
)

var (
	// A domain name is used in file names (clone, nvram, log) and shown in
	// tables: keep it to a portable subset, like container names.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	tagRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	// A virtio-blk serial is at most 20 bytes; udev makes it a link name.
	serialRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,20}$`)
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid domain config")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// ValidName reports whether name can be a bcvk domain name.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return invalid("name %q: want 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return nil
}

// checkPath accepts a clean absolute path without NUL or control characters.
func checkPath(what, p string) error {
	switch {
	case p == "":
		return invalid("%s: empty path", what)
	case len(p) > maxPathLen:
		return invalid("%s: path longer than %d bytes", what, maxPathLen)
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return invalid("%s: path %q has a control character", what, p)
	case !filepath.IsAbs(p):
		return invalid("%s: path %q is not absolute", what, p)
	case filepath.Clean(p) != p:
		return invalid("%s: path %q is not clean (want %q)", what, p, filepath.Clean(p))
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Network == "" {
		c.Network = NetworkPasst
	}
	if c.Firmware == FirmwareUEFI {
		if c.OVMFCode == "" {
			c.OVMFCode = DefaultOVMFCode
		}
		if c.OVMFVars == "" {
			c.OVMFVars = DefaultOVMFVars
		}
	}
	for i := range c.Ports {
		if !c.Ports[i].HostAddr.IsValid() {
			c.Ports[i].HostAddr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
	}
	c.Metadata.SSHPort = c.SSHPort
	return c
}

// Validate checks c as XML would use it.
func (c Config) Validate() error {
	return c.withDefaults().validate()
}

func (c Config) validate() error {
	if err := ValidName(c.Name); err != nil {
		return err
	}
	if c.UUID != "" && !uuidRE.MatchString(c.UUID) {
		return invalid("uuid %q: want lower-case 8-4-4-4-12 hex", c.UUID)
	}
	if c.MemoryMiB < MinMemoryMiB || c.MemoryMiB > MaxMemoryMiB {
		return invalid("memory %d MiB: want %d to %d MiB", c.MemoryMiB, MinMemoryMiB, MaxMemoryMiB)
	}
	if c.VCPUs < 1 || c.VCPUs > MaxVCPUs {
		return invalid("vcpus %d: want 1 to %d", c.VCPUs, MaxVCPUs)
	}
	switch c.Type {
	case TypeKVM, TypeQEMU:
	default:
		return invalid("domain type %q: want %q or %q", c.Type, TypeKVM, TypeQEMU)
	}
	switch c.Firmware {
	case FirmwareBIOS:
		if c.OVMFCode != "" || c.OVMFVars != "" || c.NVRAM != "" {
			return invalid("firmware bios takes no OVMF or NVRAM path")
		}
	case FirmwareUEFI:
		if err := checkPath("OVMF code", c.OVMFCode); err != nil {
			return err
		}
		if err := checkPath("OVMF vars template", c.OVMFVars); err != nil {
			return err
		}
		if c.NVRAM != "" {
			if err := checkPath("NVRAM", c.NVRAM); err != nil {
				return err
			}
		}
	default:
		return invalid("firmware %q: want %q or %q", c.Firmware, FirmwareBIOS, FirmwareUEFI)
	}
	if err := checkPath("disk", c.Disk.Path); err != nil {
		return err
	}
	switch c.Disk.Format {
	case "qcow2", "raw":
	default:
		return invalid("disk format %q: want qcow2 or raw", c.Disk.Format)
	}
	if len(c.Extra) > MaxExtraDisks {
		return invalid("%d further disks: at most %d", len(c.Extra), MaxExtraDisks)
	}
	serials := map[string]bool{}
	for _, d := range c.Extra {
		if err := checkPath("disk "+d.Serial, d.Path); err != nil {
			return err
		}
		switch d.Format {
		case "qcow2", "raw":
		default:
			return invalid("disk %s: format %q: want qcow2 or raw", d.Path, d.Format)
		}
		if !serialRE.MatchString(d.Serial) {
			return invalid("disk %s: serial %q: want 1 to 20 letters, digits, '_' or '-'", d.Path, d.Serial)
		}
		if serials[d.Serial] {
			return invalid("disk serial %q used twice", d.Serial)
		}
		serials[d.Serial] = true
	}
	switch c.Network {
	case NetworkPasst, NetworkSlirp:
	default:
		return invalid("network %q: want %q or %q", c.Network, NetworkPasst, NetworkSlirp)
	}
	if c.SSHPort == 0 {
		return invalid("ssh port 0: bcvk needs a forwarded SSH port")
	}
	if len(c.Ports) > MaxPorts {
		return invalid("%d port forwards: at most %d", len(c.Ports), MaxPorts)
	}
	used := map[uint16]bool{c.SSHPort: true}
	for _, p := range c.Ports {
		if p.HostPort == 0 || p.GuestPort == 0 {
			return invalid("port forward %d:%d: ports must be 1 to 65535", p.HostPort, p.GuestPort)
		}
		if used[p.HostPort] {
			return invalid("host port %d forwarded twice", p.HostPort)
		}
		used[p.HostPort] = true
		if !p.HostAddr.Is4() && !p.HostAddr.Is6() || p.HostAddr.Zone() != "" {
			return invalid("port forward address %v: want an IPv4 or IPv6 address without zone", p.HostAddr)
		}
	}
	if len(c.Shares) > MaxShares {
		return invalid("%d shares: at most %d", len(c.Shares), MaxShares)
	}
	tags := map[string]bool{}
	for _, s := range c.Shares {
		if err := checkPath("share source", s.Source); err != nil {
			return err
		}
		if len(s.Tag) > maxTagLen || !tagRE.MatchString(s.Tag) {
			return invalid("share tag %q: want 1 to %d letters, digits, '_', '.' or '-'", s.Tag, maxTagLen)
		}
		if tags[s.Tag] {
			return invalid("share tag %q used twice", s.Tag)
		}
		tags[s.Tag] = true
	}
	if err := checkPath("console log", c.ConsoleLog); err != nil {
		return err
	}
	for _, v := range c.Credentials {
		if err := credential.ValidSMBIOS(v); err != nil {
			return invalid("credential: %v", err)
		}
	}
	return c.Metadata.validate()
}

// XML returns the domain XML for c, or an error naming the first field that
// is not acceptable.
func XML(c Config) (string, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return "", err
	}
	meta, err := c.Metadata.xml()
	if err != nil {
		return "", err
	}
	d := &libvirtxml.Domain{
		Type:     string(c.Type),
		Name:     c.Name,
		UUID:     c.UUID,
		Metadata: &libvirtxml.DomainMetadata{XML: meta},
		Memory:   &libvirtxml.DomainMemory{Value: uint(c.MemoryMiB), Unit: "MiB"},
		// virtiofs needs guest RAM that virtiofsd can map: shared memfd.
		// Always there, so that a share can be added to a defined VM.
		MemoryBacking: &libvirtxml.DomainMemoryBacking{
			MemorySource: &libvirtxml.DomainMemorySource{Type: "memfd"},
			MemoryAccess: &libvirtxml.DomainMemoryAccess{Mode: "shared"},
		},
		VCPU: &libvirtxml.DomainVCPU{Placement: "static", Value: c.VCPUs},
		OS: &libvirtxml.DomainOS{
			Type:        &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "q35", Type: "hvm"},
			BootDevices: []libvirtxml.DomainBootDevice{{Dev: "hd"}},
		},
		// QEMU 10 with libvirt 9 gives a q35 guest no ACPI unless asked:
		// then the guest cannot be powered off with an ACPI event.
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}},
		CPU:        cpu(c.Type),
		Clock:      &libvirtxml.DomainClock{Offset: "utc"},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices:    devices(c),
	}
	if c.Firmware == FirmwareUEFI {
		// An explicit loader rather than firmware='efi': the same XML then
		// works with libvirt 9's and 11's firmware auto-selection, and the
		// paths are the ones we checked for.
		d.OS.Loader = &libvirtxml.DomainLoader{Path: c.OVMFCode, Readonly: "yes", Type: "pflash", Secure: "no"}
		d.OS.NVRam = &libvirtxml.DomainNVRam{NVRam: c.NVRAM, Template: c.OVMFVars}
	}
	if len(c.Credentials) > 0 {
		d.OS.SMBios = &libvirtxml.DomainSMBios{Mode: "sysinfo"}
		d.SysInfo = []libvirtxml.DomainSysInfo{{SMBIOS: &libvirtxml.DomainSysInfoSMBIOS{
			OEMStrings: &libvirtxml.DomainSysInfoOEMStrings{Entry: append([]string(nil), c.Credentials...)},
		}}}
	}
	if c.Network == NetworkSlirp {
		d.QEMUCommandline = slirpArgs(c)
	}
	s, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("domain %s: marshal XML: %w", c.Name, err)
	}
	return s + "\n", nil
}

func cpu(t Type) *libvirtxml.DomainCPU {
	if t == TypeKVM {
		return &libvirtxml.DomainCPU{Mode: "host-passthrough", Check: "none", Migratable: "on"}
	}
	// TCG: QEMU's "max" model, as the ephemeral VMs use; bootc images built
	// for x86-64-v3 do not boot on the default qemu64. Without vmx/svm the
	// guest loads no kvm modules, of no use under emulation.
	return &libvirtxml.DomainCPU{
		Mode: "maximum",
		Features: []libvirtxml.DomainCPUFeature{
			{Policy: "disable", Name: "vmx"},
			{Policy: "disable", Name: "svm"},
		},
	}
}

func devices(c Config) *libvirtxml.DomainDeviceList {
	port0 := uint(0)
	dl := &libvirtxml.DomainDeviceList{
		Disks: []libvirtxml.DomainDisk{{
			Device: "disk",
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: c.Disk.Format, Discard: "unmap"},
			Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: c.Disk.Path}},
			Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
		}},
		// A pty serial whose output virtlogd also copies to ConsoleLog:
		// `virsh console` works, and the log survives the guest.
		Serials: []libvirtxml.DomainSerial{{
			Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
			Target: &libvirtxml.DomainSerialTarget{Type: "isa-serial", Port: &port0},
			Log:    &libvirtxml.DomainChardevLog{File: c.ConsoleLog, Append: "on"},
		}},
		Consoles: []libvirtxml.DomainConsole{{
			Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
			Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &port0},
		}},
		// Key generation at first boot must not wait for entropy under TCG.
		RNGs: []libvirtxml.DomainRNG{{
			Model:   "virtio",
			Backend: &libvirtxml.DomainRNGBackend{Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}},
		}},
		MemBalloon: &libvirtxml.DomainMemBalloon{Model: "none"},
	}
	for i, e := range c.Extra {
		d := libvirtxml.DomainDisk{
			Device: "disk",
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: e.Format},
			Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: e.Path}},
			Target: &libvirtxml.DomainDiskTarget{Dev: "vd" + string(rune('b'+i)), Bus: "virtio"},
			Serial: e.Serial,
		}
		if e.ReadOnly {
			d.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
		}
		dl.Disks = append(dl.Disks, d)
	}
	for _, s := range c.Shares {
		fs := libvirtxml.DomainFilesystem{
			AccessMode: "passthrough",
			Driver:     &libvirtxml.DomainFilesystemDriver{Type: "virtiofs", Queue: 1024},
			Source:     &libvirtxml.DomainFilesystemSource{Mount: &libvirtxml.DomainFilesystemSourceMount{Dir: s.Source}},
			Target:     &libvirtxml.DomainFilesystemTarget{Dir: s.Tag},
		}
		if s.ReadOnly {
			fs.ReadOnly = &libvirtxml.DomainFilesystemReadOnly{}
		}
		dl.Filesystems = append(dl.Filesystems, fs)
	}
	if c.Network == NetworkPasst {
		dl.Interfaces = []libvirtxml.DomainInterface{passtInterface(c)}
	}
	if c.VSock {
		dl.VSock = &libvirtxml.DomainVSock{Model: "virtio", CID: &libvirtxml.DomainVSockCID{Auto: "yes"}}
	}
	return dl
}

// forwards returns the SSH forward first, then the others sorted by host
// port, so that the XML does not depend on the order of --port flags.
func forwards(c Config) []PortForward {
	ps := append([]PortForward(nil), c.Ports...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].HostPort < ps[j].HostPort })
	ssh := PortForward{HostAddr: netip.AddrFrom4([4]byte{127, 0, 0, 1}), HostPort: c.SSHPort, GuestPort: 22}
	return append([]PortForward{ssh}, ps...)
}

func passtInterface(c Config) libvirtxml.DomainInterface {
	iface := libvirtxml.DomainInterface{
		Source:  &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}},
		Backend: &libvirtxml.DomainInterfaceBackend{Type: "passt"},
		Model:   &libvirtxml.DomainInterfaceModel{Type: "virtio"},
	}
	for _, p := range forwards(c) {
		iface.PortForward = append(iface.PortForward, libvirtxml.DomainInterfaceSourcePortForward{
			Proto:   "tcp",
			Address: p.HostAddr.String(),
			Ranges:  []libvirtxml.DomainInterfaceSourcePortForwardRange{{Start: uint(p.HostPort), To: uint(p.GuestPort)}},
		})
	}
	return iface
}

// slirpArgs gives QEMU its own user-mode NIC; every value is a number or an
// address, so no comma can reach QEMU's option parser.
func slirpArgs(c Config) *libvirtxml.DomainQEMUCommandline {
	netdev := "user,id=bcvknet0"
	for _, p := range forwards(c) {
		addr := p.HostAddr.String()
		if p.HostAddr.Is6() {
			addr = "[" + addr + "]"
		}
		netdev += ",hostfwd=tcp:" + addr + ":" + strconv.Itoa(int(p.HostPort)) + "-:" + strconv.Itoa(int(p.GuestPort))
	}
	// An explicit slot: libvirt places its own PCIe root ports from slot
	// 1 without knowing of this device.
	args := []string{"-netdev", netdev, "-device", "virtio-net-pci,netdev=bcvknet0,bus=pcie.0,addr=0x10"}
	cl := &libvirtxml.DomainQEMUCommandline{}
	for _, a := range args {
		cl.Args = append(cl.Args, libvirtxml.DomainQEMUCommandlineArg{Value: a})
	}
	return cl
}
