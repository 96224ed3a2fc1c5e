package vm

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/bcvk/bcvk/pkg/consolelog"
	"github.com/bcvk/bcvk/pkg/outer/progress"
)

const followInterval = 100 * time.Millisecond

// Follow copies the console log at path to w as it grows, until ctx ends or
// stop is closed; then it copies what is left and returns. It starts with
// the log's rotated part (bcvk-inner keeps the last two parts), and follows
// the log across a rotation. What the guest printed is filtered: colours
// stay on a terminal, every other control sequence goes.
func Follow(ctx context.Context, path string, w io.Writer, stop <-chan struct{}) error {
	w = consolelog.NewWriter(w, progress.IsTerminal(w))
	rotated := consolelog.RotatedPath(path)
	var (
		off  int64
		last os.FileInfo // the part being followed
	)
	if f, err := os.Open(rotated); err == nil {
		_, err = io.Copy(w, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	copyNew := func() error {
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		switch {
		case last != nil && !os.SameFile(last, fi):
			// Rotated: the end of the part we followed is in PATH.1 now.
			if old, err := os.Open(rotated); err == nil {
				if ofi, err := old.Stat(); err == nil && os.SameFile(ofi, last) {
					_, _ = io.Copy(w, io.NewSectionReader(old, off, ofi.Size()-off))
				}
				old.Close()
			}
			off = 0
		case fi.Size() < off:
			off = 0 // emptied: the VM was started again (KVM fallback, early crash)
		}
		last = fi
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return err
		}
		n, err := io.Copy(w, f)
		off += n
		return err
	}
	tick := time.NewTicker(followInterval)
	defer tick.Stop()
	for {
		if err := copyNew(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-stop:
			return copyNew()
		case <-tick.C:
		}
	}
}
