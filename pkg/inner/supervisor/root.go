package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/erofs"
	"github.com/bcvk/bcvk/pkg/inner/initramfs"
	"github.com/bcvk/bcvk/pkg/inner/kernel"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
)

// erofsCache is the host's EROFS cache as mounted in the runner.
func (s *supervisor) erofsCache() erofs.Cache {
	return erofs.Cache{
		Dir: s.o.ErofsDir, MaxBytes: spec.ErofsCacheMaxBytes,
		Build: func(ctx context.Context, argv []string) error {
			return s.table.Run(ctx, io.Discard, argv...)
		},
		Waiting: func() {
			s.ev.Emit(events.PhaseRoot, "Waiting for another VM to build the EROFS image of the root")
		},
		Building: func() {
			s.ev.Emit(events.PhaseRoot, "Building the EROFS image of the root (once per image)")
		},
	}
}

// chooseRoot resolves the spec's root transport for kernel k: a restore
// uses what the saved VM ran with; auto weighs the image against what the
// kernel can do and what is cached.
func (s *supervisor) chooseRoot(k kernel.Kernel, warm spec.WarmMeta) (string, error) {
	if s.sp.Warm == spec.WarmRestore {
		if warm.RootTransport == spec.RootErofs {
			return spec.RootErofs, nil
		}
		return spec.RootVirtiofs, nil
	}
	asked := s.sp.RootTransport
	if asked == "" || asked == spec.RootVirtiofs {
		return spec.RootVirtiofs, nil
	}
	why := erofsUnavailable(s.o, s.sp, k)
	if asked == spec.RootErofs {
		if why != "" {
			return "", fmt.Errorf("--root-transport erofs: %s; use --root-transport virtiofs", why)
		}
		return spec.RootErofs, nil
	}
	if why != "" {
		logrus.Debugf("root transport auto: virtiofs, because %s", why)
		s.ev.Emit(events.PhaseInfo, "root transport auto: virtiofs, because "+why)
		return spec.RootVirtiofs, nil
	}
	cached := s.erofsCache().Cached(s.sp.ImageID)
	t := spec.ChooseRootTransport(asked, s.sp.ImageSize, cached, true)
	msg := fmt.Sprintf("root transport auto: %s (image %d MB, EROFS image cached: %v)", t, s.sp.ImageSize>>20, cached)
	logrus.Debug(msg)
	s.ev.Emit(events.PhaseInfo, msg)
	return t, nil
}

// erofsUnavailable says why an EROFS root cannot be used, or "".
func erofsUnavailable(o Options, sp spec.Spec, k kernel.Kernel) string {
	if sp.ImageID == "" {
		return "the spec names no image ID for the EROFS cache"
	}
	if fi, err := os.Stat(o.ErofsDir); err != nil || !fi.IsDir() {
		return fmt.Sprintf("no EROFS cache directory is mounted at %s", o.ErofsDir)
	}
	res, err := initramfs.ResolveModules(k.Root, k.ModulesDir, initramfs.ErofsModules)
	if err != nil {
		return fmt.Sprintf("the image's kernel modules could not be read: %v", err)
	}
	var missing []string
	for _, m := range res.Missing {
		if slices.Contains(initramfs.ErofsRequired, m) {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("the image's kernel %s has no %s (neither built in nor as a module)", k.Version, strings.Join(missing, " or "))
	}
	return ""
}

// prepareErofsRoot returns the EROFS image to attach: the saved VM's own
// on a restore, else the cached one, built first if needed.
func (s *supervisor) prepareErofsRoot(ctx context.Context) (string, error) {
	if s.sp.Warm == spec.WarmRestore {
		p := filepath.Join(s.o.WarmDir, spec.WarmErofsFile)
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			return "", errors.New("the saved VM ran with an EROFS root, but its EROFS image is missing from the saved VM's directory")
		}
		return p, nil
	}
	start := time.Now()
	path, built, err := s.erofsCache().Ensure(ctx, s.sp.ImageID, s.o.ImageRoot)
	if err != nil {
		return "", err
	}
	if built {
		size := int64(0)
		if fi, err := os.Stat(path); err == nil {
			size = fi.Size()
		}
		msg := fmt.Sprintf("built the EROFS image of the root in %.1fs (%d MB)", time.Since(start).Seconds(), size>>20)
		logrus.Info(msg)
		s.ev.Emit(events.PhaseInfo, msg)
	} else {
		s.ev.Emit(events.PhaseRoot, "Using the cached EROFS image of the root")
	}
	return path, nil
}
