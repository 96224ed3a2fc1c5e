package vsock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Guest CIDs are drawn from [minCID, maxCID): 0, 1 and 2 are the
// hypervisor, loopback and host, 0xFFFFFFFF is VMADDR_CID_ANY.
const (
	minCID = 3
	maxCID = 0xFFFFFFFE
)

// vhostVsockSetGuestCID is VHOST_VSOCK_SET_GUEST_CID,
// _IOW(VHOST_VIRTIO=0xAF, 0x60, __u64).
const vhostVsockSetGuestCID = 1<<30 | 8<<16 | 0xAF<<8 | 0x60

// Device is the host's vhost-vsock device: Open gives a new instance,
// SetCID claims a CID for it host-wide until its last fd is closed, and
// fails with EADDRINUSE when another instance holds the CID.
type Device interface {
	Open() (*os.File, error)
	SetCID(f *os.File, cid uint64) error
}

// VhostDevice is the kernel's /dev/vhost-vsock (or Path, if set).
type VhostDevice struct {
	Path string
}

// DefaultVhostPath is where the kernel's vhost-vsock device appears.
const DefaultVhostPath = "/dev/vhost-vsock"

func (d VhostDevice) path() string {
	if d.Path == "" {
		return DefaultVhostPath
	}
	return d.Path
}

// Open opens a new vhost-vsock instance.
func (d VhostDevice) Open() (*os.File, error) {
	return os.OpenFile(d.path(), os.O_RDWR, 0)
}

// SetCID issues VHOST_VSOCK_SET_GUEST_CID on f.
func (d VhostDevice) SetCID(f *os.File, cid uint64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, vhostVsockSetGuestCID, uintptr(unsafe.Pointer(&cid)))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return os.NewSyscallError("ioctl VHOST_VSOCK_SET_GUEST_CID", errno)
	}
	return nil
}

// AllocateCID claims a random guest CID that no other VM on the host
// holds. The kernel's CID table is the only arbiter, so concurrent
// callers, in this process or any other, never get the same CID and no
// lock file is needed. rnd (nil: math/rand/v2) picks candidates; a CID in
// use costs one of attempts. The returned file holds the CID until it and
// every copy of it (QEMU's vhostfd) are closed.
func AllocateCID(ctx context.Context, dev Device, rnd func() uint32, attempts int) (cid uint32, f *os.File, err error) {
	if rnd == nil {
		rnd = rand.Uint32
	}
	if attempts < 1 {
		attempts = 1
	}
	f, err = dev.Open()
	if err != nil {
		return 0, nil, fmt.Errorf("opening the vhost-vsock device: %w", err)
	}
	// One instance serves every attempt: a failed SET_GUEST_CID leaves it
	// without a CID.
	for range attempts {
		if err := ctx.Err(); err != nil {
			f.Close()
			return 0, nil, fmt.Errorf("allocating a vsock CID: %w", err)
		}
		cid := minCID + rnd()%(maxCID-minCID)
		err := dev.SetCID(f, uint64(cid))
		if err == nil {
			return cid, f, nil
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			f.Close()
			return 0, nil, fmt.Errorf("setting vsock guest CID %d: %w", cid, err)
		}
	}
	f.Close()
	return 0, nil, fmt.Errorf("no free vsock guest CID after %d attempts: every one tried is held by another VM", attempts)
}
