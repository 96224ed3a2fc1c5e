package ephemeral

import (
	"context"
	"io"
	"os"
	"time"
)

const followInterval = 100 * time.Millisecond

// Follow copies the file at path to w as it grows, until ctx ends or stop
// is closed; then it copies what is left and returns.
func Follow(ctx context.Context, path string, w io.Writer, stop <-chan struct{}) error {
	var off int64
	copyNew := func() error {
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Size() < off {
			off = 0 // truncated: the VM was restarted with TCG after a KVM attempt
		}
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
