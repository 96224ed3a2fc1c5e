package swap

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

func TestHeader(t *testing.T) {
	uuid := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	h, err := Header(64<<20, uuid)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != PageSize {
		t.Fatalf("header is %d bytes", len(h))
	}
	if got := string(h[PageSize-10:]); got != "SWAPSPACE2" {
		t.Errorf("magic %q", got)
	}
	if v := binary.LittleEndian.Uint32(h[1024:]); v != 1 {
		t.Errorf("version %d", v)
	}
	if lp := binary.LittleEndian.Uint32(h[1028:]); lp != 64<<20/PageSize-1 {
		t.Errorf("last page %d", lp)
	}
	if !bytes.Equal(h[1036:1052], uuid[:]) {
		t.Error("uuid not at offset 1036")
	}
	if !bytes.Equal(h[:1024], make([]byte, 1024)) {
		t.Error("boot bits are not zero")
	}
	if _, err := Header(9*PageSize, uuid); err == nil {
		t.Error("nine pages were accepted")
	}
}

func TestCreate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d", "swap.img")
	if err := Create(p, 1<<20); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 1<<20 || string(b[PageSize-10:PageSize]) != "SWAPSPACE2" {
		t.Fatalf("size %d, magic %q", len(b), b[PageSize-10:PageSize])
	}
	if err := Create(p, 1<<20); err == nil {
		t.Error("an existing file was overwritten")
	}
	if err := Create(filepath.Join(t.TempDir(), "small"), 4096); err == nil {
		t.Error("a one-page swap was made")
	}
}
