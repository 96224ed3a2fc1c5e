// Package erofs keeps the EROFS images of image roots that bcvk attaches
// as read-only disks (--root-transport erofs): one file per image ID in a
// host cache directory, built once with mkfs.erofs under a lock, renamed
// into place when complete, touched on every use, and evicted least
// recently used first beyond a size cap.
package erofs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Binary is mkfs.erofs in the runner image.
const Binary = "mkfs.erofs"

// lockPoll is how often a VM waiting for another VM's build checks the lock.
const lockPoll = 200 * time.Millisecond

// MkfsArgs is the mkfs.erofs argument list (without the binary) that
// writes an EROFS image of src to out. Uncompressed: under TCG the guest's
// decompression costs more than the reads it saves. Owners, modes and
// extended attributes (security.capability) are kept, as are the files'
// own modification times; the build time and UUID are fixed (the UUID
// from the image ID), so the same image gives the same bytes.
func MkfsArgs(out, src, imageID string) []string {
	return []string{"--quiet", "-T0", "--mkfs-time", "--preserve-mtime", "-U", uuidFor(imageID), out, src}
}

// uuidFor formats the first 32 hex digits of id as a UUID.
func uuidFor(id string) string {
	h := (id + strings.Repeat("0", 32))[:32]
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Cache is the cache directory.
type Cache struct {
	Dir string
	// MaxBytes caps the sum of the cached images' sizes.
	MaxBytes int64
	// Build runs mkfs.erofs with argv (binary first).
	Build func(ctx context.Context, argv []string) error
	// Waiting is told when another VM holds the lock (optional).
	Waiting func()
	// Building is told when this VM starts the build (optional).
	Building func()
}

// Path is where the image's EROFS image is kept.
func (c Cache) Path(imageID string) string { return filepath.Join(c.Dir, imageID+".erofs") }

// Cached says whether the image's EROFS image is complete in the cache.
func (c Cache) Cached(imageID string) bool {
	fi, err := os.Lstat(c.Path(imageID))
	return err == nil && fi.Mode().IsRegular()
}

// Ensure returns the path of the image's EROFS image, building it from src
// if no other VM has, and whether this call built it. Two VMs that start
// at once build it once: the second waits for the first's lock.
func (c Cache) Ensure(ctx context.Context, imageID, src string) (string, bool, error) {
	final := c.Path(imageID)
	if c.Cached(imageID) {
		touch(final)
		return final, false, nil
	}
	unlock, err := c.lock(ctx, imageID)
	if err != nil {
		return "", false, err
	}
	defer unlock()
	if c.Cached(imageID) { // built while we waited
		touch(final)
		return final, false, nil
	}
	// Under the lock no one else builds this image: temporary files of
	// it are left by a build that was killed.
	c.removeTemps(imageID)
	if c.Building != nil {
		c.Building()
	}
	tmp := filepath.Join(c.Dir, fmt.Sprintf(".%s.erofs.tmp-%d", imageID, os.Getpid()))
	if err := c.Build(ctx, append([]string{Binary}, MkfsArgs(tmp, src, imageID)...)); err != nil {
		_ = os.Remove(tmp)
		return "", false, fmt.Errorf("building the EROFS image of the root: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		_ = os.Remove(tmp)
		return "", false, fmt.Errorf("building the EROFS image of the root: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.Remove(tmp)
		return "", false, err
	}
	c.Evict(imageID)
	return final, true, nil
}

// lock takes the image's build lock, waiting for another VM's build.
func (c Cache) lock(ctx context.Context, imageID string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(c.Dir, "."+imageID+".lock"), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("the EROFS cache's lock: %w", err)
	}
	told := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("the EROFS cache's lock: %w", err)
		}
		if !told && c.Waiting != nil {
			c.Waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

func (c Cache) removeTemps(imageID string) {
	old, _ := filepath.Glob(filepath.Join(c.Dir, "."+imageID+".erofs.tmp-*"))
	for _, p := range old {
		_ = os.Remove(p)
	}
}

// Evict removes the least recently used images beyond MaxBytes; keep
// (the image just used) stays whatever its size. A VM that still has a
// removed image open keeps reading it: the file goes when it is closed.
func (c Cache) Evict(keep string) {
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		return
	}
	type cached struct {
		id   string
		size int64
		used time.Time
	}
	var all []cached
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".erofs")
		if !ok || strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil {
			all = append(all, cached{id, fi.Size(), fi.ModTime()})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.After(all[j].used) })
	var total int64
	for _, k := range all {
		if k.id == keep {
			total += k.size
		}
	}
	full := false
	for _, k := range all {
		if k.id == keep {
			continue
		}
		// Strictly least recently used: once one does not fit, neither
		// do the older ones.
		if full = full || total+k.size > c.MaxBytes; full {
			_ = os.Remove(c.Path(k.id))
			continue
		}
		total += k.size
	}
}

// touch marks a cached image as just used (eviction goes by mtime).
func touch(path string) {
	now := time.Now()
	_ = os.Chtimes(path, now, now)
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
