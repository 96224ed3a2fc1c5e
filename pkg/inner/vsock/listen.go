package vsock

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"

	"github.com/mdlayher/vsock"
	"golang.org/x/sys/unix"
)

// UnixListenPath is where vhost-device-vsock delivers guest connections
// to host port port.
func UnixListenPath(udsPath string, port uint32) string {
	return fmt.Sprintf("%s_%d", udsPath, port)
}

// UnixListen accepts the guest's connections to host port port through
// the userspace backend whose --uds-path is udsPath. A socket file left
// there by an earlier run is replaced; any other file is an error.
func UnixListen(udsPath string, port uint32) (net.Listener, error) {
	path := UnixListenPath(udsPath, port)
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode().Type() == fs.ModeSocket:
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
		}
	case err == nil:
		return nil, fmt.Errorf("listening for vsock port %d: %s exists and is not a socket", port, path)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("listening for vsock port %d: %w", port, err)
	}
	return net.Listen("unix", path)
}

// KernelListen accepts guests' connections to host port port through the
// kernel's AF_VSOCK. Ports are host-wide and any VM may connect: see
// ListenRandomPort and FromCID.
func KernelListen(port uint32) (net.Listener, error) {
	// VMADDR_CID_ANY rather than vsock.Listen's own CID: finding that
	// needs /dev/vsock, which a container may not have.
	l, err := vsock.ListenContextID(unix.VMADDR_CID_ANY, port, nil)
	if err != nil {
		// Not a nil *vsock.Listener in a non-nil net.Listener.
		return nil, err
	}
	return l, nil
}

// ListenRandomPort calls listen with random ports of at least 1024 (lower
// ones are privileged) until one is free, at most attempts times. rnd nil
// means math/rand/v2.
func ListenRandomPort(listen func(port uint32) (net.Listener, error), rnd func() uint32, attempts int) (net.Listener, uint32, error) {
	if rnd == nil {
		rnd = rand.Uint32
	}
	if attempts < 1 {
		attempts = 1
	}
	// 0xFFFFFFFF is VMADDR_PORT_ANY.
	const lo, hi = 1024, 0xFFFFFFFF
	for range attempts {
		port := lo + rnd()%(hi-lo)
		l, err := listen(port)
		if err == nil {
			return l, port, nil
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			return nil, 0, fmt.Errorf("listening on vsock port %d: %w", port, err)
		}
	}
	return nil, 0, fmt.Errorf("no free vsock port after %d attempts", attempts)
}

// FromCID passes on only connections from guest cid: with the kernel
// backend another VM on the host could otherwise reach our port.
func FromCID(l net.Listener, cid uint32) net.Listener {
	return &cidListener{Listener: l, cid: cid}
}

type cidListener struct {
	net.Listener
	cid uint32
}

func (l *cidListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if a, ok := c.RemoteAddr().(*vsock.Addr); ok && a.ContextID == l.cid {
			return c, nil
		}
		c.Close()
	}
}
