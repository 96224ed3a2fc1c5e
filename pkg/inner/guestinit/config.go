// Package guestinit is the /init of the initramfs that bcvk boots images
// with. It runs inside the guest as PID 1 for a moment: it mounts the image
// root that virtiofsd serves read-only, puts a tmpfs overlay on top so the
// root is writable and the image never changes, and hands over to the
// image's own init.
package guestinit

// ConfigPath is where the config sits in the initramfs.
const ConfigPath = "/bcvk-init.json"

// Marker starts every line this init prints, so the host side can find them
// in the console log. ErrorMarker starts a fatal error.
const (
	Marker      = "bcvk-init: "
	ErrorMarker = "bcvk-init: error: "
	// HandoverMessage is printed just before the image's init takes over.
	HandoverMessage = "handing over to "
)

// Config tells the guest init what to do.
type Config struct {
	RootTag string `json:"rootTag"`
	// RootDiskSerial, when set, names the virtio disk (by its serial) that
	// holds an EROFS image of the root; it is mounted instead of the
	// virtiofs share RootTag.
	RootDiskSerial string `json:"rootDiskSerial,omitempty"`
	// Modules are paths inside the initramfs, in load order.
	Modules []string `json:"modules,omitempty"`
	// MissingModules are wanted modules the image's kernel has neither
	// built in nor as a file; the init fails clearly if it needs them.
	MissingModules []string `json:"missingModules,omitempty"`
	// Init is the list of candidates for the image's init, first found wins.
	Init []string `json:"init"`
	// Mounts are further virtiofs shares to mount before the image's init
	// starts, so they work whatever the image's systemd supports.
	Mounts []Mount `json:"mounts,omitempty"`
	// Storage, when set, is the host's container storage: mounted
	// read-only and made an additional image store of the guest's podman.
	Storage *Storage `json:"storage,omitempty"`
	// ReportPort, when set, is the host vsock port that bcvk-inner reads
	// the init's steps on (ReportRoot, ReportShares, ReportHandover).
	ReportPort uint32 `json:"reportPort,omitempty"`
}

// The steps the init reports over vsock, one line each (the handover line
// ends with the init's path).
const (
	ReportRoot     = "root mounted"
	ReportShares   = "shares mounted"
	ReportHandover = "handover to "
)

// Storage is a virtiofs share with a containers/storage store.
type Storage struct {
	Tag string `json:"tag"`
	// Path is where the guest sees it, below /run.
	Path string `json:"path"`
	// Driver is the store's graph driver; the guest's podman must use the
	// same one to read it.
	Driver string `json:"driver"`
}

// Mount is a virtiofs share and where the guest sees it.
type Mount struct {
	Tag      string `json:"tag"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"readOnly"`
}

// DefaultInit lists where images keep their init.
var DefaultInit = []string{"/sbin/init", "/usr/sbin/init", "/usr/lib/systemd/systemd", "/lib/systemd/systemd"}
