package vsock

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/mdlayher/vsock"
)

// Dialer opens host→guest connections. Every connection it returns also
// has a CloseWrite() error method, for half-closing like *net.TCPConn.
type Dialer interface {
	Dial(ctx context.Context, port uint32) (net.Conn, error)
}

// Error is a constant error value.
type Error string

func (e Error) Error() string { return string(e) }

// ErrRefused matches (errors.Is) a dial that reached the guest but found
// nothing listening on the port, typically because the guest has not
// started the service yet: worth retrying, unlike other failures.
const ErrRefused Error = "the guest refused the connection"

// RefusedError says which port the guest refused; it is ErrRefused.
type RefusedError struct {
	Port uint32
}

func (e *RefusedError) Error() string        { return fmt.Sprintf("the guest refused port %d", e.Port) }
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// maxReply bounds the backend's reply line ("OK 1073741824\n" is 14 bytes).
const maxReply = 64

// UnixDialer dials guest ports through vhost-device-vsock's unix socket
// (its --uds-path), with the "CONNECT <port>" handshake.
type UnixDialer struct {
	Path string
}

// Dial connects to the guest's port. ctx bounds the whole handshake,
// including a backend that never answers; it does not affect the
// connection once established.
func (d UnixDialer) Dial(ctx context.Context, port uint32) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "unix", d.Path)
	if err != nil {
		return nil, fmt.Errorf("connecting to the vsock backend: %w", err)
	}
	uc := c.(*net.UnixConn)
	conn, err := handshake(ctx, uc, port)
	if err != nil {
		uc.Close()
		return nil, err
	}
	return conn, nil
}

func handshake(ctx context.Context, uc *net.UnixConn, port uint32) (net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		if err := uc.SetDeadline(dl); err != nil {
			return nil, err
		}
	}
	// Closing unblocks both the write and the read at once.
	stop := context.AfterFunc(ctx, func() { uc.Close() })
	r := bufio.NewReaderSize(uc, maxReply)
	line, err := exchange(uc, r, port)
	if !stop() || ctx.Err() != nil {
		return nil, fmt.Errorf("waiting for the guest to accept port %d: %w", port, context.Cause(ctx))
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The deadline fired a moment before ctx noticed.
			return nil, fmt.Errorf("waiting for the guest to accept port %d: %w", port, context.DeadlineExceeded)
		}
		return nil, err
	}
	if !isOK(line) {
		return nil, fmt.Errorf("connecting to guest port %d: unexpected reply %q from the vsock backend", port, line)
	}
	if err := uc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	conn := &unixConn{Conn: uc, uc: uc}
	if n := r.Buffered(); n > 0 {
		// The guest may speak first (an SSH banner): its bytes may have
		// arrived with the reply.
		b, _ := r.Peek(n)
		conn.pending = bytes.Clone(b)
	}
	return conn, nil
}

// exchange sends CONNECT and returns the reply line, at most maxReply
// bytes, or a RefusedError when the backend closes first.
func exchange(uc *net.UnixConn, r *bufio.Reader, port uint32) ([]byte, error) {
	if _, err := fmt.Fprintf(uc, "CONNECT %d\n", port); err != nil {
		if closedByPeer(err) {
			return nil, &RefusedError{Port: port}
		}
		return nil, fmt.Errorf("connecting to guest port %d: %w", port, err)
	}
	line, err := r.ReadSlice('\n')
	switch {
	case err == nil, errors.Is(err, bufio.ErrBufferFull):
		return line, nil
	case len(line) == 0 && closedByPeer(err):
		return nil, &RefusedError{Port: port}
	case closedByPeer(err):
		// A partial line, then the backend hung up.
		return line, nil
	default:
		return nil, fmt.Errorf("connecting to guest port %d: %w", port, err)
	}
}

// closedByPeer reports an error that means the other end went away.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// isOK accepts "OK <hostport>\n".
func isOK(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("OK "))
	if !ok {
		return false
	}
	rest, ok = bytes.CutSuffix(rest, []byte("\n"))
	if !ok {
		return false
	}
	_, err := strconv.ParseUint(string(rest), 10, 32)
	return err == nil
}

// unixConn is a guest connection through the userspace backend: bytes
// read along with the handshake reply come first.
type unixConn struct {
	net.Conn
	uc      *net.UnixConn
	pending []byte
}

func (c *unixConn) Read(b []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.uc.Read(b)
}

// CloseWrite half-closes the connection: the guest reads EOF.
func (c *unixConn) CloseWrite() error { return c.uc.CloseWrite() }

// CloseRead shuts down the reading side.
func (c *unixConn) CloseRead() error { return c.uc.CloseRead() }

// KernelDialer dials guest ports through the kernel's AF_VSOCK.
type KernelDialer struct {
	CID uint32
}

// Dial connects to the guest's port; ctx bounds the connect.
func (d KernelDialer) Dial(ctx context.Context, port uint32) (net.Conn, error) {
	// DialContext connects without blocking and gives up when ctx ends.
	c, err := vsock.DialContext(ctx, d.CID, port, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("waiting for the guest to accept port %d: %w", port, context.Cause(ctx))
		}
		// The guest's kernel answers a port without a listener with a
		// reset.
		if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, &RefusedError{Port: port}
		}
		return nil, err
	}
	return c, nil
}
