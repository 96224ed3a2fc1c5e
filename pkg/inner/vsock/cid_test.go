package vsock

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeDevice models the kernel's host-wide CID table: a CID belongs to
// one open instance until that instance is closed.
type fakeDevice struct {
	mu      sync.Mutex
	holders map[uint64]*os.File
	setErr  error // returned by every SetCID when set
	sets    int
}

func newFakeDevice() *fakeDevice {
	return &fakeDevice{holders: map[uint64]*os.File{}}
}

func (d *fakeDevice) Open() (*os.File, error) { return os.Open(os.DevNull) }

func (d *fakeDevice) SetCID(f *os.File, cid uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sets++
	if d.setErr != nil {
		return d.setErr
	}
	if cid <= 2 || cid >= 0xFFFFFFFF {
		return unix.EINVAL
	}
	if h, ok := d.holders[cid]; ok && h != f && !closed(h) {
		return unix.EADDRINUSE
	}
	// Like the kernel, a new CID on the same instance replaces its old one.
	for c, h := range d.holders {
		if h == f {
			delete(d.holders, c)
		}
	}
	d.holders[cid] = f
	return nil
}

// closed reports whether f was closed: the kernel frees the CID then.
func closed(f *os.File) bool {
	_, err := f.Stat()
	return errors.Is(err, os.ErrClosed)
}

// seq returns CIDs start, start+1, ... once mapped into the CID range.
func seq(start uint32) func() uint32 {
	n := start
	return func() uint32 { n++; return n - 1 }
}

func TestAllocateCIDConcurrentDistinct(t *testing.T) {
	dev := newFakeDevice()
	const n = 50
	type result struct {
		cid uint32
		f   *os.File
		err error
	}
	res := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Every goroutine tries the same CIDs in the same order, the
			// worst case: all but one of them collide at each step.
			cid, f, err := AllocateCID(t.Context(), dev, seq(0), n)
			res[i] = result{cid, f, err}
		})
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for _, r := range res {
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer r.f.Close()
		if seen[r.cid] {
			t.Fatalf("CID %d allocated twice", r.cid)
		}
		if r.cid < 3 || r.cid >= 0xFFFFFFFE {
			t.Fatalf("reserved CID %d", r.cid)
		}
		seen[r.cid] = true
	}
	if dev.sets <= n {
		t.Fatalf("expected EADDRINUSE retries, got %d SetCID calls for %d VMs", dev.sets, n)
	}
}

func TestAllocateCIDRetriesInUse(t *testing.T) {
	dev := newFakeDevice()
	cid1, f1, err := AllocateCID(t.Context(), dev, seq(0), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	cid2, f2, err := AllocateCID(t.Context(), dev, seq(0), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if cid1 != 3 || cid2 != 4 {
		t.Fatalf("got CIDs %d and %d, want 3 and then 4 after one retry", cid1, cid2)
	}
}

func TestAllocateCIDBoundedAttempts(t *testing.T) {
	dev := newFakeDevice()
	_, f, err := AllocateCID(t.Context(), dev, seq(0), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	always0 := func() uint32 { return 0 }
	dev.sets = 0
	_, f2, err := AllocateCID(t.Context(), dev, always0, 5)
	if err == nil || !strings.Contains(err.Error(), "after 5 attempts") {
		t.Fatalf("want exhaustion after 5 attempts, got %v", err)
	}
	if f2 != nil {
		t.Fatal("file returned with an error")
	}
	if dev.sets != 5 {
		t.Fatalf("%d attempts made, want 5", dev.sets)
	}
}

func TestAllocateCIDOtherErrorStops(t *testing.T) {
	dev := newFakeDevice()
	dev.setErr = os.NewSyscallError("ioctl VHOST_VSOCK_SET_GUEST_CID", unix.EPERM)
	_, _, err := AllocateCID(t.Context(), dev, seq(0), 10)
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("got %v, want EPERM", err)
	}
	if want := "setting vsock guest CID 3: ioctl VHOST_VSOCK_SET_GUEST_CID: operation not permitted"; err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
	if dev.sets != 1 {
		t.Fatalf("%d attempts, want 1", dev.sets)
	}
}

func TestAllocateCIDReleaseOnClose(t *testing.T) {
	dev := newFakeDevice()
	cid, f, err := AllocateCID(t.Context(), dev, seq(0), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := AllocateCID(t.Context(), dev, seq(0), 1); err == nil {
		t.Fatal("CID allocated twice")
	}
	f.Close()
	again, f2, err := AllocateCID(t.Context(), dev, seq(0), 1)
	if err != nil {
		t.Fatalf("CID not freed by closing: %v", err)
	}
	defer f2.Close()
	if again != cid {
		t.Fatalf("got %d, want the freed %d", again, cid)
	}
}

func TestAllocateCIDRange(t *testing.T) {
	for _, r := range []uint32{0, 1, 2, 0xFFFFFFFA, 0xFFFFFFFB, 0xFFFFFFFC, 0xFFFFFFFD, 0xFFFFFFFE, 0xFFFFFFFF} {
		dev := newFakeDevice()
		cid, f, err := AllocateCID(t.Context(), dev, func() uint32 { return r }, 1)
		if err != nil {
			t.Fatalf("rnd %#x: %v", r, err)
		}
		f.Close()
		if cid < 3 || cid >= 0xFFFFFFFE {
			t.Fatalf("rnd %#x gave reserved CID %#x", r, cid)
		}
	}
}

func TestAllocateCIDContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := AllocateCID(ctx, newFakeDevice(), nil, 3)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestVhostDeviceOpenError(t *testing.T) {
	_, _, err := AllocateCID(t.Context(), VhostDevice{Path: t.TempDir() + "/missing"}, nil, 1)
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "opening the vhost-vsock device: ") {
		t.Fatalf("got %v", err)
	}
}

func TestVhostDeviceSetCIDNotDevice(t *testing.T) {
	// The real ioctl on a file that is not vhost-vsock fails without
	// retrying, and the errno comes through.
	dev := VhostDevice{Path: os.DevNull}
	_, _, err := AllocateCID(t.Context(), dev, nil, 3)
	if !errors.Is(err, unix.ENOTTY) {
		t.Fatalf("got %v, want ENOTTY", err)
	}
}

func TestVhostDeviceReal(t *testing.T) {
	if _, err := os.Stat(DefaultVhostPath); err != nil {
		t.Skip("no /dev/vhost-vsock here")
	}
	cid, f, err := AllocateCID(t.Context(), VhostDevice{}, nil, 10)
	if err != nil {
		t.Skipf("cannot use /dev/vhost-vsock: %v", err)
	}
	defer f.Close()
	// A second instance may not take the same CID while f holds it.
	g, err := VhostDevice{}.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := (VhostDevice{}).SetCID(g, uint64(cid)); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("second claim of CID %d: %v, want EADDRINUSE", cid, err)
	}
}
