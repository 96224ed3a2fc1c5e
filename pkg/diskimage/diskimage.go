// Package diskimage reads what bcvk needs to know from a disk image file's
// header: its format, and for qcow2 its virtual size and backing file.
package diskimage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Formats.
const (
	Raw   = "raw"
	QCOW2 = "qcow2"
)

// qcow2Magic begins every qcow2 file ("QFI\xfb").
const qcow2Magic = "QFI\xfb"

// Header is what a disk image file says about itself.
type Header struct {
	Format string
	// VirtualSize is the disk's size as the guest sees it (qcow2 only;
	// a raw file's size is its length).
	VirtualSize uint64
	// Backed says a qcow2 file names a backing file.
	Backed bool
}

// Read reads the header. Anything that is not qcow2 is raw: raw has no
// header to recognise.
func Read(r io.ReaderAt) (Header, error) {
	var h [32]byte
	n, err := r.ReadAt(h[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return Header{}, fmt.Errorf("reading the disk header: %w", err)
	}
	if n < 4 || string(h[:4]) != qcow2Magic {
		return Header{Format: Raw}, nil
	}
	if n < 32 {
		return Header{}, errors.New("the qcow2 header is truncated")
	}
	return Header{
		Format:      QCOW2,
		Backed:      binary.BigEndian.Uint64(h[8:16]) != 0, // backing_file_offset
		VirtualSize: binary.BigEndian.Uint64(h[24:32]),
	}, nil
}
