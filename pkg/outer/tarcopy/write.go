// Package tarcopy is the host's side of `bcvk ephemeral cp`: it writes a
// host file tree as a tar stream for the guest's tar, and extracts a stream
// that came from a guest, as untrusted data, without the host's tar.
package tarcopy

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Writer writes trees into one tar stream.
type Writer struct {
	tw   *tar.Writer
	warn io.Writer
}

// NewWriter writes the stream to w; what is skipped is said on warn.
func NewWriter(w, warn io.Writer) *Writer {
	return &Writer{tw: tar.NewWriter(w), warn: warn}
}

// Close ends the stream (the end-of-archive blocks).
func (w *Writer) Close() error { return w.tw.Close() }

// AddTree adds the file or directory tree at src (followed, when it is a
// symbolic link: the user named it) with its top entry named name (a
// slash-separated archive path). Symbolic links inside are added as links.
// Devices, FIFOs and sockets are skipped with a warning, as tar skips
// sockets. Owners are not recorded: the files belong to whoever extracts
// them.
func (w *Writer) AddTree(src, name string) error {
	root, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		entry := name
		if rel != "." {
			entry = name + "/" + filepath.ToSlash(rel)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return w.add(p, entry, fi)
	})
}

func (w *Writer) add(p, entry string, fi fs.FileInfo) error {
	var link string
	switch m := fi.Mode(); {
	case m.IsRegular(), m.IsDir():
	case m&fs.ModeSymlink != 0:
		var err error
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	default:
		fmt.Fprintf(w.warn, "bcvk: skipped %s: %s (cp copies files, directories and symbolic links)\n", p, kindName(m))
		return nil
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	hdr.Name = entry
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	// Access and change times would force PAX headers for nothing.
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	// The header promised Size bytes: a file that changes under the copy
	// fails it rather than sending a torn stream.
	n, err := io.Copy(w.tw, io.LimitReader(f, hdr.Size))
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("%s shrank while it was being copied", p)
	}
	return nil
}

// AddEmpty adds an empty regular file named name.
func (w *Writer) AddEmpty(name string) error {
	return w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600, ModTime: time.Now()})
}

func kindName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a file, directory or symbolic link"
}
