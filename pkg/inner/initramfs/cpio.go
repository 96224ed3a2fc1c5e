// Package initramfs builds the small initramfs that bcvk boots every image
// with: bcvk-inner itself as /init (see package guestinit), a JSON config, and
// the few kernel modules from the image that mounting a virtiofs root with a
// writable overlay needs. Using our own initramfs makes the root writable the
// same way whatever initramfs the image carries, and skips the image's initrd
// phase entirely (several seconds under TCG).
package initramfs

import (
	"bufio"
	"fmt"
	"io"
	"path"
)

// cpioWriter writes the "newc" format the kernel unpacks.
type cpioWriter struct {
	w   *bufio.Writer
	ino uint32
	n   int64
}

func newCPIO(w io.Writer) *cpioWriter { return &cpioWriter{w: bufio.NewWriter(w)} }

func (c *cpioWriter) header(name string, mode uint32, size int) error {
	c.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	if err := c.write([]byte(hdr + name + "\x00")); err != nil {
		return err
	}
	return c.pad()
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.n % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string) error { return c.header(name, 0o040755, 0) }

// File adds a regular file.
func (c *cpioWriter) File(name string, perm uint32, data []byte) error {
	if err := c.header(name, 0o100000|perm, len(data)); err != nil {
		return err
	}
	if err := c.write(data); err != nil {
		return err
	}
	return c.pad()
}

// Close writes the trailer.
func (c *cpioWriter) Close() error {
	if err := c.header("TRAILER!!!", 0, 0); err != nil {
		return err
	}
	return c.w.Flush()
}

// dirsOf returns the parent directories of p, outermost first.
func dirsOf(p string) []string {
	var out []string
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}
