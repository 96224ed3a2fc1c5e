package varlink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// listenFDsStart is the first descriptor that socket activation passes
// (sd_listen_fds(3)).
const listenFDsStart = 3

// Listen binds a varlink address; only "unix:PATH" (or "unix:@NAME", an
// abstract socket) is served. A socket file that nobody answers on is a
// leftover of a killed bcvk and is replaced; one that answers is in use.
// Closing the listener removes the socket file.
func Listen(address string) (net.Listener, error) {
	path, ok := strings.CutPrefix(address, "unix:")
	if !ok || path == "" {
		return nil, fmt.Errorf("address %q: use unix:PATH", address)
	}
	if i := strings.IndexByte(path, ';'); i >= 0 {
		return nil, fmt.Errorf("address %q: parameters after ';' are not supported", address)
	}
	if !strings.HasPrefix(path, "@") {
		if fi, err := os.Lstat(path); err == nil {
			if fi.Mode().Type() != os.ModeSocket {
				return nil, fmt.Errorf("%s exists and is not a socket", path)
			}
			if c, err := net.Dial("unix", path); err == nil {
				c.Close()
				return nil, fmt.Errorf("%s is in use: another service answers on it", path)
			}
			if err := os.Remove(path); err != nil {
				return nil, err
			}
		}
	}
	return net.Listen("unix", path)
}

// Activated is what socket activation passed: a listening socket, or (as
// `varlinkctl exec:` and the Rust bcvk's activation do) one connected
// socket to serve until it closes.
type Activated struct {
	Listener net.Listener
	Conn     net.Conn
}

// Serve serves the activated socket until ctx ends or, for a connection,
// until the client closes it.
func (a *Activated) Serve(ctx context.Context, s *Service) error {
	if a.Listener != nil {
		return s.Serve(ctx, a.Listener)
	}
	return s.ServeConn(ctx, a.Conn)
}

// ErrNotActivated says that no socket was passed to this process.
var ErrNotActivated = errors.New("no socket passed by socket activation (LISTEN_FDS and LISTEN_PID)")

// Activation reads LISTEN_PID and LISTEN_FDS as sd_listen_fds(3) does and
// takes the first passed socket; the variables are removed so that
// children do not take them for theirs.
func Activation() (*Activated, error) {
	a, err := activation(os.Getenv, os.Getpid(), listenFDsStart)
	if !errors.Is(err, ErrNotActivated) {
		for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
			os.Unsetenv(k)
		}
	}
	return a, err
}

// Requested says whether this process was socket-activated: LISTEN_FDS is
// set for it. It takes nothing.
func Requested() bool {
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	return os.Getenv("LISTEN_FDS") != "" && err == nil && pid == os.Getpid()
}

// activation is Activation with its environment, PID and first descriptor
// given, for tests.
func activation(getenv func(string) string, pid, first int) (*Activated, error) {
	fds, pids := getenv("LISTEN_FDS"), getenv("LISTEN_PID")
	if fds == "" {
		return nil, ErrNotActivated
	}
	p, err := strconv.Atoi(pids)
	if err != nil {
		return nil, fmt.Errorf("LISTEN_PID %q is not a process ID", pids)
	}
	if p != pid {
		// Meant for another process (our parent's): not ours to take.
		return nil, ErrNotActivated
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("LISTEN_FDS %q is not a number of descriptors", fds)
	}
	if n == 0 {
		return nil, ErrNotActivated
	}
	// Every passed descriptor is ours: none may leak into children.
	for fd := first; fd < first+n; fd++ {
		unix.CloseOnExec(fd)
	}
	if n > 1 {
		return nil, fmt.Errorf("LISTEN_FDS=%d: bcvk serves one socket, pass one", n)
	}
	typ, err := unix.GetsockoptInt(first, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("descriptor %d from socket activation is not a socket: %w", first, err)
	}
	if typ != unix.SOCK_STREAM {
		return nil, fmt.Errorf("descriptor %d from socket activation is not a stream socket", first)
	}
	listening, err := unix.GetsockoptInt(first, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return nil, fmt.Errorf("descriptor %d from socket activation: %w", first, err)
	}
	f := os.NewFile(uintptr(first), "LISTEN_FD_"+strconv.Itoa(first))
	// net.FileListener and FileConn duplicate the descriptor.
	defer f.Close()
	if listening != 0 {
		l, err := net.FileListener(f)
		if err != nil {
			return nil, err
		}
		// The socket file belongs to whoever made it (systemd): ours to
		// close, not to remove.
		if ul, ok := l.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
		return &Activated{Listener: l}, nil
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return &Activated{Conn: c}, nil
}
