package initramfs

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/bcvk/bcvk/pkg/inner/guestinit"
)

// Decompressor turns a compressed module file into its plain bytes.
type Decompressor func(path string) ([]byte, error)

// Options for Build.
type Options struct {
	// InitBinary is the program that becomes /init (bcvk-inner itself).
	InitBinary string
	// ModulesDir is /usr/lib/modules/VERSION of the image (host path).
	ModulesDir string
	// RootTag is the virtiofs tag of the image root.
	RootTag string
	// Decompress handles .xz and .zst modules; gzip is handled here.
	Decompress Decompressor
	// Mounts are further shares for the guest init to mount.
	Mounts []guestinit.Mount
	// ImageRoot is where the guest init exposes the pristine image root.
	ImageRoot string
}

// Build writes the initramfs to w and returns the config it embedded.
func Build(w io.Writer, o Options) (guestinit.Config, error) {
	cfg := guestinit.Config{RootTag: o.RootTag, Init: guestinit.DefaultInit, Mounts: o.Mounts, ImageRoot: o.ImageRoot}
	res, err := ResolveModules(o.ModulesDir, RootModules)
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
	for _, rel := range res.Files {
		data, err := readModule(filepath.Join(o.ModulesDir, rel), o.Decompress)
		if err != nil {
			return cfg, err
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

func readModule(p string, dec Decompressor) ([]byte, error) {
	switch {
	case strings.HasSuffix(p, ".ko"):
		return os.ReadFile(p)
	case strings.HasSuffix(p, ".gz"):
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("decompressing %s: %w", p, err)
		}
		return io.ReadAll(zr)
	case dec != nil:
		return dec(p)
	}
	return nil, fmt.Errorf("cannot decompress kernel module %s", p)
}
