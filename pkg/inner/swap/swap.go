// Package swap makes swap disks: a sparse file with the header mkswap
// writes, so that the runner needs no mkswap and the guest no formatting.
package swap

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// PageSize is the guest's page size the header is written for (x86_64 and
// the usual aarch64 kernels).
const PageSize = 4096

// minPages is the least the kernel's swapon accepts.
const minPages = 10

// Header returns the first page of a swap area of size bytes: version 1,
// the last usable page, no bad pages, the UUID, and the SWAPSPACE2 magic at
// the end of the page (linux/swap.h, union swap_header).
func Header(size int64, uuid [16]byte) ([]byte, error) {
	pages := size / PageSize
	if pages < minPages {
		return nil, fmt.Errorf("a swap area of %d bytes is too small: it needs at least %d pages of %d bytes", size, minPages, PageSize)
	}
	if pages-1 > 0xffffffff {
		return nil, fmt.Errorf("a swap area of %d bytes is too large", size)
	}
	h := make([]byte, PageSize)
	binary.LittleEndian.PutUint32(h[1024:], 1)               // version
	binary.LittleEndian.PutUint32(h[1028:], uint32(pages-1)) // last_page
	binary.LittleEndian.PutUint32(h[1032:], 0)               // nr_badpages
	copy(h[1036:1052], uuid[:])                              // sws_uuid
	copy(h[1052:1068], "bcvk-swap")                          // sws_volume
	copy(h[PageSize-10:], "SWAPSPACE2")
	return h, nil
}

// NewHeader is Header with a new random UUID.
func NewHeader(size int64) ([]byte, error) {
	var uuid [16]byte
	if _, err := rand.Read(uuid[:]); err != nil {
		return nil, err
	}
	uuid[6] = uuid[6]&0x0f | 0x40 // version 4
	uuid[8] = uuid[8]&0x3f | 0x80 // RFC 4122 variant
	return Header(size, uuid)
}

// Create makes path (which must not exist) a sparse swap area of size bytes.
func Create(path string, size int64) (err error) {
	h, err := NewHeader(size)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if err := f.Truncate(size); err != nil {
		return err
	}
	_, err = f.WriteAt(h, 0)
	return err
}
