// Package privdir makes and checks the directories bcvk keeps for one user
// (VM state, saved VMs, the KVM verdict) and the files in them.
//
// bcvk run as root with a user's environment (sudo -E, su without -) finds
// these directories through that user's XDG_RUNTIME_DIR, XDG_CACHE_HOME or
// HOME. A symlink the user planted there would make root delete, truncate or
// chmod files anywhere, so no path is followed on trust: each component is
// checked with Lstat first.
package privdir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinks is the kernel's own limit on symlinks in one lookup.
const maxSymlinks = 40

// Ensure returns base/sub as a directory that only this user controls,
// making what is missing.
//
// base is where the environment points (XDG_RUNTIME_DIR, ~/.cache). Each
// of its components must belong to root or to this user and be writable by
// no one else, except sticky directories such as /tmp, where others cannot
// replace our entries. A symlink among them is followed only when root or
// this user made it. Missing components are made as sub's are.
//
// sub is bcvk's own (e.g. "bcvk/warm"): each level must be a real directory,
// never a symlink, owned by this user and writable by no one else; it is
// made with mode, or tightened to it.
func Ensure(base, sub string, mode fs.FileMode) (string, error) {
	if !filepath.IsAbs(base) || !filepath.IsLocal(sub) {
		return "", fmt.Errorf("privdir: %q/%q is not an absolute directory and a relative path below it", base, sub)
	}
	p, err := resolve(base)
	if err != nil {
		return "", err
	}
	for _, name := range strings.Split(filepath.Clean(sub), "/") {
		p = filepath.Join(p, name)
		if err := own(p, mode); err != nil {
			return "", err
		}
	}
	// The path as given: callers compare it with paths they recorded.
	return filepath.Join(base, sub), nil
}

// resolve walks path from /, checking every directory and symlink on the
// way, and returns it free of symlinks.
func resolve(path string) (string, error) {
	cur := "/"
	if err := trusted(cur); err != nil {
		return "", err
	}
	todo := components(path)
	for hops := 0; len(todo) > 0; {
		next := filepath.Join(cur, todo[0]) // cur has no symlinks, so ".." is lexical
		todo = todo[1:]
		st, err := lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := own(next, 0o700); err != nil {
				return "", err
			}
		case err != nil:
			return "", err
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			if hops++; hops > maxSymlinks {
				return "", refuse(next, "it leads through too many symlinks")
			}
			if st.Uid != 0 && int(st.Uid) != os.Geteuid() {
				return "", refuse(next, fmt.Sprintf("it is a symlink owned by uid %d, not by you (uid %d) or root", st.Uid, os.Geteuid()))
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			todo = append(components(target), todo...)
			cur = "/"
			continue
		default:
			if err := trusted(next); err != nil {
				return "", err
			}
		}
		cur = next
	}
	return cur, nil
}

func components(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// trusted checks a directory above bcvk's own: root's or ours, and
// changeable by no one else.
func trusted(path string) error {
	st, err := lstat(path)
	if err != nil {
		return err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return refuse(path, "it is not a directory")
	case st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return refuse(path, fmt.Sprintf("it belongs to uid %d, not to you (uid %d) or root", st.Uid, os.Geteuid()))
	case writableByOthers(&st) && st.Mode&unix.S_ISVTX == 0:
		return refuse(path, fmt.Sprintf("others can write to it (mode %04o)", st.Mode&0o7777))
	}
	return nil
}

// own makes path a directory of ours with mode, or checks that it is one
// and tightens it to mode. The parent is already checked, so no one else
// can swap the entry between the check and the chmod.
func own(path string, mode fs.FileMode) error {
	if err := os.Mkdir(path, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	st, err := owned(path)
	if err != nil {
		return fmt.Errorf("%w (remove it, and bcvk makes it afresh)", err)
	}
	if fs.FileMode(st.Mode&0o7777)&^mode != 0 {
		return os.Chmod(path, mode)
	}
	return nil
}

// Owned checks that path is a directory (not a symlink) that only this user
// controls, as bcvk made it; callers check a directory this way before
// removing it.
func Owned(path string) error {
	_, err := owned(path)
	return err
}

func owned(path string) (unix.Stat_t, error) {
	st, err := lstat(path)
	switch {
	case err != nil:
		return st, err
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return st, refuse(path, "it is a symlink, not a directory bcvk made")
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return st, refuse(path, "it is not a directory")
	}
	if err := Mine(&st); err != nil {
		return st, refuse(path, err.Error())
	}
	return st, nil
}

func lstat(path string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return st, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	return st, nil
}

// Mine says why a file's status shows it is not under this user's sole
// control: owned by someone else, or writable by others.
func Mine(st *unix.Stat_t) error {
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("it belongs to uid %d, not to you (uid %d)", st.Uid, os.Geteuid())
	}
	if writableByOthers(st) {
		return fmt.Errorf("others can write to it (mode %04o)", st.Mode&0o7777)
	}
	return nil
}

// writableByOthers allows group write only for our own group: with user
// private groups (Fedora's umask 002) ~/.cache is often 0775.
func writableByOthers(st *unix.Stat_t) bool {
	return st.Mode&0o002 != 0 || (st.Mode&0o020 != 0 && int(st.Gid) != os.Getegid())
}

func refuse(path, why string) error {
	return fmt.Errorf("refusing %s: %s", path, why)
}

// CreateFile makes a new file in dir, a directory Ensure returned: never
// through a symlink, never over an existing file.
func CreateFile(dir, name string, perm fs.FileMode) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
}

// ReadFile reads at most limit bytes of a regular file of ours in dir,
// never through a symlink, never blocking on a FIFO.
func ReadFile(dir, name string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, refuse(f.Name(), "it is not a regular file")
	}
	if err := Mine(&st); err != nil {
		return nil, refuse(f.Name(), err.Error())
	}
	return io.ReadAll(io.LimitReader(f, limit))
}
