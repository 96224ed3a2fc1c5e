package tarcopy

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// Bounds on the names a stream may hold (Linux's PATH_MAX and NAME_MAX).
const (
	maxName      = 4096
	maxComponent = 255
)

// Extract reads the tar stream r, which came from a guest and is untrusted,
// into the directory dir, which the caller made empty and keeps to itself.
// Every entry must lie under the first entry's top component, which becomes
// name. Only regular files, directories, symbolic links, and hard links to
// files of the same stream are accepted. Nothing is followed: each entry's
// parent must be a directory that this stream created, and files are
// created new, so no entry writes through a link, whatever the links say.
// Permission bits and modification times are kept; setuid, setgid and
// sticky bits and owners are not. On failure, what it created is removed.
// It reports whether name is a directory.
func Extract(r io.Reader, dir, name string) (isDir bool, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return false, err
	}
	defer root.Close()
	x := &extraction{root: root, name: name, made: map[string]byte{}}
	defer func() {
		if err != nil && len(x.made) > 0 {
			if rerr := root.RemoveAll(name); rerr != nil {
				err = errors.Join(err, fmt.Errorf("removing what was extracted: %w", rerr))
			}
		}
	}()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, fmt.Errorf("reading the copy stream: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return false, err
		}
	}
	if x.top == "" {
		return false, errors.New("the copy stream held nothing")
	}
	// Directories get their modes and times last: writing into them
	// needed write permission and changed their times.
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := root.Chmod(d.rel, d.mode); err != nil {
			return false, err
		}
		if err := root.Chtimes(d.rel, d.mtime, d.mtime); err != nil {
			return false, err
		}
	}
	return x.made[name] == 'd', nil
}

type extraction struct {
	root *os.Root
	name string
	// top is the stream's own name for its top entry.
	top string
	// made is what this stream created: 'd', 'f' or 'l' by path.
	made map[string]byte
	dirs []dirMeta
}

type dirMeta struct {
	rel   string
	mode  fs.FileMode
	mtime time.Time
}

func (x *extraction) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := x.path(hdr.Name)
	if err != nil {
		return err
	}
	if _, dup := x.made[rel]; dup {
		return fmt.Errorf("the copy stream names %q twice", hdr.Name)
	}
	if parent := path.Dir(rel); parent != "." && x.made[parent] != 'd' {
		return fmt.Errorf("the copy stream puts %q in %q, which is not a directory it sent before", hdr.Name, path.Dir(hdr.Name))
	}
	// Only the permission bits: a setuid file from a guest is not for
	// the host.
	mode := fs.FileMode(hdr.Mode) & fs.ModePerm
	switch hdr.Typeflag {
	case tar.TypeDir:
		// Owner-writable until the end, so its entries can be made.
		if err := x.root.Mkdir(rel, 0o700); err != nil {
			return err
		}
		x.made[rel] = 'd'
		x.dirs = append(x.dirs, dirMeta{rel, mode, hdr.ModTime})
	case tar.TypeReg:
		f, err := x.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		x.made[rel] = 'f'
		_, err = io.Copy(f, r)
		if err == nil {
			err = f.Chmod(mode)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if err := x.root.Chtimes(rel, hdr.ModTime, hdr.ModTime); err != nil {
			return err
		}
	case tar.TypeSymlink:
		// The target is only data: it may point anywhere, and is never
		// followed here.
		if len(hdr.Linkname) == 0 || len(hdr.Linkname) > maxName || strings.ContainsRune(hdr.Linkname, 0) {
			return fmt.Errorf("the copy stream has a bad link target for %q", hdr.Name)
		}
		if err := x.root.Symlink(hdr.Linkname, rel); err != nil {
			return err
		}
		x.made[rel] = 'l'
	case tar.TypeLink:
		target, err := x.path(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link %q: %w", hdr.Name, err)
		}
		if x.made[target] != 'f' {
			return fmt.Errorf("the copy stream links %q to %q, which is not a file it sent before", hdr.Name, hdr.Linkname)
		}
		if err := x.root.Link(target, rel); err != nil {
			return err
		}
		x.made[rel] = 'f'
	default:
		return fmt.Errorf("the copy stream holds %q, %s: bcvk copies only files, directories and links", hdr.Name, typeName(hdr.Typeflag))
	}
	return nil
}

// path checks an entry's name and returns it relative to the extraction
// directory, with the top component renamed.
func (x *extraction) path(name string) (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("the copy stream holds an entry %q %s: refused", trunc(name), why)
	}
	switch {
	case name == "":
		return "", bad("with no name")
	case len(name) > maxName:
		return "", bad(fmt.Sprintf("longer than %d bytes", maxName))
	case strings.ContainsRune(name, 0):
		return "", bad("with a NUL byte")
	case strings.HasPrefix(name, "/"):
		return "", bad("with an absolute name")
	}
	n := strings.TrimSuffix(strings.TrimPrefix(name, "./"), "/")
	parts := strings.Split(n, "/")
	for _, p := range parts {
		switch {
		case p == "..":
			return "", bad("that climbs out with ..")
		case p == "" || p == ".":
			return "", bad("with an empty or . component")
		case len(p) > maxComponent:
			return "", bad(fmt.Sprintf("with a component longer than %d bytes", maxComponent))
		}
	}
	if x.top == "" {
		x.top = parts[0]
	} else if parts[0] != x.top {
		return "", bad(fmt.Sprintf("outside the copied %q", x.top))
	}
	parts[0] = x.name
	return strings.Join(parts, "/"), nil
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func typeName(t byte) string {
	switch t {
	case tar.TypeChar:
		return "a character device"
	case tar.TypeBlock:
		return "a block device"
	case tar.TypeFifo:
		return "a FIFO"
	}
	return fmt.Sprintf("an entry of type %q", t)
}
