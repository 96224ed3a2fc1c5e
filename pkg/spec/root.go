package spec

import (
	"fmt"
	"regexp"
)

// Root transports: how the guest reaches the image's root file system.
const (
	// RootVirtiofs serves the mounted image with virtiofsd.
	RootVirtiofs = "virtiofs"
	// RootErofs attaches an EROFS image of it, built once per image ID and
	// cached on the host, as a read-only virtio disk.
	RootErofs = "erofs"
	// RootAuto lets bcvk-inner choose (see ChooseRootTransport).
	RootAuto = "auto"
)

// Paths and names of the EROFS root.
const (
	// ErofsDir is where the host's EROFS cache directory is mounted.
	ErofsDir = "/bcvk/erofs"
	// ErofsSerial is the serial of the root disk; the guest init finds the
	// disk by it.
	ErofsSerial = "bcvk-root"
	// WarmErofsFile is the saved VM's own link to the EROFS image it ran
	// with: a restore must attach the very same bytes.
	WarmErofsFile = "root.erofs"
	// ErofsCacheMaxBytes caps the EROFS cache: beyond it, the least
	// recently used images are removed.
	ErofsCacheMaxBytes = 10 << 30
	// ErofsAutoMaxImageBytes is the largest image (podman's size) for
	// which auto chooses EROFS on first use, when its EROFS image must
	// still be built (see docs/performance.md).
	ErofsAutoMaxImageBytes = 4 << 30
)

// ErofsFile is the cache file name of an image's EROFS image.
func ErofsFile(imageID string) string { return imageID + ".erofs" }

var imageIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidateImageID checks a podman image ID: it becomes a file name.
func ValidateImageID(id string) error {
	if !imageIDRE.MatchString(id) {
		return fmt.Errorf("image ID %.80q is not 64 lower-case hex digits", id)
	}
	return nil
}

func validateRoot(s *Spec) error {
	switch s.RootTransport {
	case "", RootVirtiofs:
		return nil
	case RootErofs, RootAuto:
		// The host fills in the image ID after the flags are checked;
		// bcvk-inner refuses erofs without one.
		if s.ImageID == "" {
			return nil
		}
		return ValidateImageID(s.ImageID)
	}
	return fmt.Errorf("root transport %q is not known: use virtiofs, erofs or auto", s.RootTransport)
}

// ChooseRootTransport resolves auto: EROFS when its image is already
// cached, or when the image is small enough that building it costs less
// than EROFS saves on the boot; virtiofs when the kernel lacks what EROFS
// needs.
func ChooseRootTransport(asked string, imageBytes int64, cached, kernelCanErofs bool) string {
	switch asked {
	case RootErofs:
		return RootErofs
	case RootAuto:
		if kernelCanErofs && (cached || imageBytes <= ErofsAutoMaxImageBytes) {
			return RootErofs
		}
	}
	return RootVirtiofs
}
