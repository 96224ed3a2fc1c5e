package vm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/spec"
)

// ErofsBase is the EROFS cache: $XDG_CACHE_HOME/bcvk/erofs (default
// ~/.cache/bcvk/erofs), private, beside the saved VMs (a saved VM keeps a
// hard link to the EROFS image it ran with). bcvk-inner builds, touches
// and evicts the images in it.
func (h Host) ErofsBase() (string, error) { return h.cacheDir("erofs", "EROFS images") }

// planErofs fills in what bcvk-inner needs for an EROFS root (the image's
// ID and size) and returns the cache directory to mount, or "" when the
// spec asks for virtiofs.
func (r *Runtime) planErofs(img *podman.Image, sp *spec.Spec) (string, error) {
	if sp.RootTransport != spec.RootErofs && sp.RootTransport != spec.RootAuto {
		return "", nil
	}
	sp.ImageID = strings.TrimPrefix(img.ID, "sha256:")
	sp.ImageSize = img.Size
	return r.Host.ErofsBase()
}

// erofsFile is the cached EROFS image of imageID in base.
func erofsFile(base, imageID string) string {
	if base == "" {
		return ""
	}
	return filepath.Join(base, spec.ErofsFile(imageID))
}

// RemoveErofsCache removes the cached EROFS images (not a build in
// progress, whose temporary file and lock stay). A running VM keeps its
// image open, and a saved VM its own hard link, so neither is harmed.
func (h Host) RemoveErofsCache() (int, error) {
	base, err := h.ErofsBase()
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".erofs") {
			continue
		}
		if err := os.Remove(filepath.Join(base, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
