package todisk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/bcvk/bcvk/pkg/outer/privdir"
	"golang.org/x/sys/unix"
)

// XattrName holds a disk's cache key, as JSON, on the disk file itself: it
// goes where the file goes and disappears with it.
const XattrName = "user.bcvk.to-disk"

// keyVersion changes when the way disks are made changes.
const keyVersion = 1

// Key is everything a disk's contents depend on. Unlike the Rust bcvk, size
// and format are part of it: a changed --disk-size must not reuse a disk.
type Key struct {
	Version     int      `json:"version"`
	ImageDigest string   `json:"imageDigest"`
	ImageID     string   `json:"imageID"`
	ImageRef    string   `json:"imageRef"`
	Format      string   `json:"format"`
	DiskSize    int64    `json:"diskSize"`
	Filesystem  string   `json:"filesystem"`
	RootSize    string   `json:"rootSize"`
	KernelArgs  []string `json:"kernelArgs"`
}

func (k Key) encode() []byte {
	b, _ := json.Marshal(k) // a struct of plain fields always marshals
	return b
}

// Decision says what to do with an existing file at DISK.
type Decision int

const (
	// Build: no file there.
	Build Decision = iota
	// Reuse: made from the same inputs.
	Reuse
	// Regenerate: made by bcvk from other inputs (Why says which).
	Regenerate
	// Foreign: a file bcvk did not make (or cannot tell); overwriting it
	// needs --overwrite.
	Foreign
)

// Verdict is a Decision with its reason.
type Verdict struct {
	Decision Decision
	Why      string
}

// Decide compares the file at path with the key. The key is trusted only
// on a regular file that only this user can change: another user could
// have made a file carrying the right key, or changed its contents after.
func Decide(path string, want Key) (Verdict, error) {
	var st unix.Stat_t
	err := unix.Lstat(path, &st)
	if errors.Is(err, unix.ENOENT) {
		return Verdict{Decision: Build}, nil
	}
	if err != nil {
		return Verdict{}, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return Verdict{Decision: Foreign, Why: "it is a symbolic link (bcvk does not follow it: it writes disks as regular files of yours)"}, nil
	default:
		return Verdict{}, fmt.Errorf("%s exists and is not a regular file: give the path of a disk image file", path)
	}
	if err := privdir.Mine(&st); err != nil {
		return Verdict{Decision: Foreign, Why: err.Error() + ", so bcvk cannot trust its record of what it was made from"}, nil
	}
	// The key is read from the file just checked: O_NOFOLLOW and the same
	// inode, in case the name changed in between.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return Verdict{Decision: Foreign, Why: "bcvk cannot open it: " + err.Error()}, nil
	}
	defer unix.Close(fd)
	var ost unix.Stat_t
	if err := unix.Fstat(fd, &ost); err != nil || ost.Dev != st.Dev || ost.Ino != st.Ino {
		return Verdict{Decision: Foreign, Why: "it changed while bcvk looked at it"}, nil
	}
	have, err := readKey(fd)
	switch {
	case errors.Is(err, unix.ENODATA):
		return Verdict{Decision: Foreign, Why: "it was not made by bcvk to-disk"}, nil
	case errors.Is(err, unix.ENOTSUP):
		return Verdict{Decision: Foreign, Why: "its file system keeps no extended attributes, so bcvk cannot tell what it was made from"}, nil
	case err != nil:
		return Verdict{Decision: Foreign, Why: err.Error()}, nil
	}
	if bytes.Equal(have.encode(), want.encode()) {
		return Verdict{Decision: Reuse}, nil
	}
	return Verdict{Decision: Regenerate, Why: "changed: " + strings.Join(diff(have, want), ", ")}, nil
}

// readKey reads the key from the open file, so that it comes from the
// file that was checked.
func readKey(fd int) (Key, error) {
	buf := make([]byte, 4096)
	n, err := unix.Fgetxattr(fd, XattrName, buf)
	if err != nil {
		return Key{}, err
	}
	var k Key
	if err := json.Unmarshal(buf[:n], &k); err != nil {
		return Key{}, fmt.Errorf("its bcvk cache key is unreadable: %w", err)
	}
	return k, nil
}

// writeKey records the key on the open file.
func writeKey(fd int, k Key) error {
	return unix.Fsetxattr(fd, XattrName, k.encode(), 0)
}

// diff names the fields that differ, as the user knows them.
func diff(a, b Key) []string {
	var out []string
	names := map[string]string{
		"Version": "bcvk's disk layout", "ImageDigest": "image digest", "ImageID": "image ID",
		"ImageRef": "image reference", "Format": "format", "DiskSize": "disk size",
		"Filesystem": "file system", "RootSize": "root size", "KernelArgs": "kernel arguments",
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := 0; i < va.NumField(); i++ {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, names[va.Type().Field(i).Name])
		}
	}
	if len(out) == 0 {
		out = append(out, "the key's encoding")
	}
	return out
}
