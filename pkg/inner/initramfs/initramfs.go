package initramfs

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/bcvk/bcvk/pkg/inner/guestinit"
	"github.com/bcvk/bcvk/pkg/inner/imagefs"
)

// Decompressor runs argv (such as "xz -dc") with in, a module opened inside
// the image, as its standard input, and copies its output to out. It must
// stop when a write to out fails: that is how the size cap stops a bomb.
type Decompressor func(argv []string, in *os.File, out io.Writer) error

// Caps on what the image's modules may put into the initramfs. The modules
// bcvk needs are each well under 1 MiB; a larger one is a mistake or an
// attack, and the initramfs is held in memory by QEMU and the guest.
const (
	maxModule  = 64 << 20
	maxModules = 256 << 20
)

// Options for Build.
type Options struct {
	// InitBinary is the program that becomes /init (bcvk-inner itself).
	InitBinary string
	// ImageMount is the host path where the image is mounted. Every path
	// read from the image is resolved inside it (see package imagefs).
	ImageMount string
	// ModulesDir is /usr/lib/modules/VERSION, a path inside the image.
	ModulesDir string
	// RootTag is the virtiofs tag of the image root.
	RootTag string
	// RootDiskSerial, when set, is the serial of the EROFS root disk that
	// the guest mounts instead of the share RootTag.
	RootDiskSerial string
	// Decompress handles .xz and .zst modules; gzip is handled here.
	Decompress Decompressor
	// Mounts are further shares for the guest init to mount.
	Mounts []guestinit.Mount
	// Storage is the host's container storage for the guest init to set
	// up, if shared.
	Storage *guestinit.Storage
	// Vsock loads the virtio vsock transport before the handover.
	Vsock bool
	// ReportPort is the host vsock port the guest init reports to (0: none).
	ReportPort uint32
}

// Build writes the initramfs to w and returns the config it embedded.
func Build(w io.Writer, o Options) (guestinit.Config, error) {
	cfg := guestinit.Config{RootTag: o.RootTag, RootDiskSerial: o.RootDiskSerial, Init: guestinit.DefaultInit, Mounts: o.Mounts, Storage: o.Storage, ReportPort: o.ReportPort}
	want := append([]string(nil), RootModules...)
	if o.RootDiskSerial != "" {
		want = append(want, ErofsModules...)
	}
	if o.Vsock {
		want = append(want, VsockModules...)
	}
	res, err := ResolveModules(o.ImageMount, o.ModulesDir, want)
	if err != nil {
		return cfg, err
	}
	cfg.MissingModules = res.Missing

	c := newCPIO(w)
	dirs := map[string]bool{}
	addDirs := func(p string) error {
		for _, d := range dirsOf(p) {
			if !dirs[d] {
				dirs[d] = true
				if err := c.Dir(d); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, d := range []string{"dev", "proc", "sys", "sysroot", "lower", "overlay"} {
		dirs[d] = true
		if err := c.Dir(d); err != nil {
			return cfg, err
		}
	}
	var total int64
	for _, rel := range res.Files {
		// depmod writes paths below the modules dir; a ".." or an odd
		// name only comes from a tampered modules.dep.
		if !filepath.IsLocal(rel) || !validName(modName(rel)) {
			return cfg, fmt.Errorf("%s/modules.dep names the module %s, which is not a module file below that directory",
				imagefs.Quote(o.ModulesDir), imagefs.Quote(rel))
		}
		p := path.Join(o.ModulesDir, rel)
		data, err := readModule(o.ImageMount, p, o.Decompress)
		if err != nil {
			return cfg, fmt.Errorf("reading the kernel module %s: %w", imagefs.Quote(p), err)
		}
		if total += int64(len(data)); total > maxModules {
			return cfg, fmt.Errorf("the kernel modules bcvk needs from %s are together %w", imagefs.Quote(o.ModulesDir), &imagefs.TooLargeError{Limit: maxModules})
		}
		name := path.Join("modules", modName(rel)+".ko")
		if err := addDirs(name); err != nil {
			return cfg, err
		}
		if err := c.File(name, 0o644, data); err != nil {
			return cfg, err
		}
		cfg.Modules = append(cfg.Modules, "/"+name)
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return cfg, err
	}
	if err := c.File(strings.TrimPrefix(guestinit.ConfigPath, "/"), 0o644, cfgJSON); err != nil {
		return cfg, err
	}
	initBin, err := os.ReadFile(o.InitBinary)
	if err != nil {
		return cfg, fmt.Errorf("reading the init program: %w", err)
	}
	if err := c.File("init", 0o755, initBin); err != nil {
		return cfg, err
	}
	return cfg, c.Close()
}

// readModule returns the plain content of the module at p inside the image,
// decompressed with at most maxModule bytes. The decompressor gets the file
// opened inside the image, never a path to open.
func readModule(root, p string, dec Decompressor) ([]byte, error) {
	f, _, err := imagefs.Open(root, p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b []byte
	switch {
	case strings.HasSuffix(p, ".ko"):
		b, err = imagefs.ReadAll(f, maxModule)
	case strings.HasSuffix(p, ".gz"):
		zr, zerr := gzip.NewReader(f)
		if zerr != nil {
			return nil, fmt.Errorf("decompressing: %w", zerr)
		}
		b, err = imagefs.ReadAll(zr, maxModule)
	case dec != nil && (strings.HasSuffix(p, ".xz") || strings.HasSuffix(p, ".zst")):
		tool := "xz"
		if strings.HasSuffix(p, ".zst") {
			tool = "zstd"
		}
		w := &cappedBuffer{limit: maxModule}
		if err = dec([]string{tool, "-dc"}, f, w); w.over {
			err = &imagefs.TooLargeError{Limit: maxModule}
		}
		b = w.b
	default:
		return nil, fmt.Errorf("cannot decompress it: bcvk reads .ko, .ko.gz, .ko.xz and .ko.zst")
	}
	if err != nil {
		return nil, fmt.Errorf("decompressing: %w", err)
	}
	return b, nil
}

// cappedBuffer fails the write that would take it past limit.
type cappedBuffer struct {
	b     []byte
	limit int
	over  bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if len(c.b)+len(p) > c.limit {
		c.over = true
		return 0, &imagefs.TooLargeError{Limit: int64(c.limit)}
	}
	c.b = append(c.b, p...)
	return len(p), nil
}

// validName is what kernel module names are made of; the name becomes a
// file name in the initramfs and the guest init's config.
func validName(name string) bool {
	return name != "" && !strings.ContainsFunc(name, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_')
	})
}
