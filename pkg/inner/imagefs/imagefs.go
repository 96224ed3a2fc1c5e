// Package imagefs reads the files of a container image mounted at a
// directory of bcvk-inner's own file system (the root). The image is not
// trusted: a symlink anywhere in a path, absolute or with "..", is resolved
// as the image itself would see it, with the root as "/", so that no link can
// hand bcvk-inner (and through the initramfs, the guest) a file of the
// container such as the SSH key or /proc. Only regular files are opened, and
// reads are bounded, so a link to /dev/zero or a FIFO can neither exhaust
// memory nor hang.
package imagefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxLinks is Linux's own limit on symlinks followed in one lookup.
const maxLinks = 40

// Resolve returns name as a clean absolute path inside the image in which no
// component is a symlink: each link met on the way is followed inside root.
// root + the result is then the host path of the same file.
func Resolve(root, name string) (string, error) { return resolve(root, name, false) }

// ResolveCreate is Resolve for a path that may not exist yet: from the
// first missing component on, the rest is taken as it stands (it holds no
// symlinks, since it does not exist), so that the caller can create it
// inside root.
func ResolveCreate(root, name string) (string, error) { return resolve(root, name, true) }

func resolve(root, name string, allowMissing bool) (string, error) {
	root = filepath.Clean(root)
	cur, todo, links := "/", name, 0
	for todo != "" {
		var elem string
		elem, todo, _ = strings.Cut(todo, "/")
		switch elem {
		case "", ".":
			continue
		case "..":
			// At "/" this stays at "/", as ".." does at the root of a chroot.
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, elem)
		// cur holds no symlink, so this looks at the image's own entry.
		fi, err := os.Lstat(root + next)
		if allowMissing && errors.Is(err, fs.ErrNotExist) {
			return path.Join(next, path.Clean("/"+todo)), nil
		}
		if err != nil {
			return "", fmt.Errorf("resolving %s inside the image: %s: %w", Quote(name), Quote(next), bare(err))
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolving %s inside the image: more than %d symlinks: %w", Quote(name), maxLinks, unix.ELOOP)
		}
		target, err := os.Readlink(root + next)
		if err != nil {
			return "", fmt.Errorf("resolving %s inside the image: %s: %w", Quote(name), Quote(next), bare(err))
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		todo = target + "/" + todo
	}
	return cur, nil
}

// Stat describes what name resolves to inside the image, and returns that
// resolved path.
func Stat(root, name string) (fs.FileInfo, string, error) {
	p, err := Resolve(root, name)
	if err != nil {
		return nil, "", err
	}
	fi, err := os.Lstat(filepath.Join(root, p))
	if err != nil {
		return nil, "", fmt.Errorf("checking %s in the image: %w", Quote(name), bare(err))
	}
	return fi, p, nil
}

// ReadDir lists the directory that name resolves to inside the image.
func ReadDir(root, name string) ([]fs.DirEntry, error) {
	p, err := Resolve(root, name)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(root, p))
	if err != nil {
		return nil, fmt.Errorf("listing %s in the image: %w", Quote(name), bare(err))
	}
	return entries, nil
}

// Open opens the regular file that name resolves to inside the image and
// returns it with its resolved path. Anything else (a directory, a device, a
// FIFO, a socket) is refused without blocking.
func Open(root, name string) (*os.File, string, error) {
	p, err := Resolve(root, name)
	if err != nil {
		return nil, "", err
	}
	fd, err := openIn(root, p, true)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		// No openat2 (Linux < 5.6, or a seccomp filter that denies it).
		fd, err = openIn(root, p, false)
	}
	if err != nil {
		return nil, "", fmt.Errorf("opening %s in the image: %w", Quote(name), err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("opening %s in the image: %w", Quote(name), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, "", fmt.Errorf("opening %s in the image: %s is not a regular file", Quote(name), Quote(p))
	}
	// Non-blocking was only for the open; a program reading the file as
	// its stdin expects an ordinary descriptor.
	_ = unix.SetNonblock(fd, false)
	return os.NewFile(uintptr(fd), filepath.Join(root, p)), p, nil
}

// openIn opens p, which Resolve returned, below root. With openat2 the
// kernel itself refuses to leave root or follow any symlink, so a tree that
// changed since Resolve cannot lead outside; without it, O_NOFOLLOW still
// guards the last component, and the image mount is read-only.
func openIn(root, p string, useOpenat2 bool) (int, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dir)
	rel := "." + p
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY
	for range 5 {
		if useOpenat2 {
			fd, err := unix.Openat2(dir, rel, &unix.OpenHow{Flags: uint64(flags),
				Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS})
			// EAGAIN: a concurrent rename made the kernel unsure; try again.
			if err != unix.EINTR && err != unix.EAGAIN {
				return fd, err
			}
			continue
		}
		fd, err := unix.Openat(dir, rel, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
	return -1, unix.EAGAIN
}

// ReadFile reads the regular file that name resolves to inside the image,
// refusing one larger than limit bytes.
func ReadFile(root, name string, limit int64) ([]byte, error) {
	f, _, err := Open(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// A sparse file of any size is refused before a byte is read.
	var b []byte
	if fi, serr := f.Stat(); serr == nil && fi.Size() > limit {
		err = &TooLargeError{Limit: limit}
	} else {
		b, err = ReadAll(f, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s in the image: %w", Quote(name), err)
	}
	return b, nil
}

// ReadAll reads r to its end, or fails once it has given more than limit
// bytes: what an image holds, even compressed, must not exhaust memory.
func ReadAll(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Limit: limit}
	}
	return b, nil
}

// TooLargeError is a file, or its decompressed content, past a cap.
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("larger than the %s that bcvk accepts", size(e.Limit))
}

func size(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// bare drops the host path from an *fs.PathError: messages name the path
// inside the image, which is what the user can look for.
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Quote returns s as it is when it holds only characters that paths and
// versions of kernels use, and Go-quoted otherwise, so that a name from an
// image cannot put control characters or misleading text into a message.
func Quote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("/._-+~@:=", r))
	}) {
		return s
	}
	return strconv.Quote(s)
}
