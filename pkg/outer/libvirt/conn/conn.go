package conn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"golang.org/x/crypto/ssh"
)

// DialTimeout bounds Open as a whole (dial, SSH handshake, libvirt
// handshake) unless Options.Timeout or an earlier ctx deadline says
// otherwise. It is libvirt's own client timeout for the socket.
const DialTimeout = 15 * time.Second

// StartDaemonHint is how a missing local daemon is reported.
const StartDaemonHint = "start libvirtd (or virtqemud), e.g. hack/libvirt-host.sh start"

// Options tune Open. The zero value is what bcvk uses.
type Options struct {
	// Timeout replaces DialTimeout when non-zero.
	Timeout time.Duration
	// Getenv reads HOME, XDG_RUNTIME_DIR, XDG_CACHE_HOME, USER and
	// SSH_AUTH_SOCK; nil is os.Getenv. Tests pass their own.
	Getenv func(string) string
}

func (o Options) getenv() func(string) string {
	if o.Getenv != nil {
		return o.Getenv
	}
	return os.Getenv
}

// Conn is an open connection to a libvirt daemon.
type Conn struct {
	uri  URI
	lv   *libvirt.Libvirt
	base net.Conn    // the unix or TCP stream Open dialed; under ssh, the TCP connection to sshd
	ssh  *ssh.Client // nil unless the URI is qemu+ssh

	closeOnce sync.Once
	closeErr  error
}

// Open connects to the daemon of u and opens its qemu driver. Every error
// names u and says what to check.
func Open(ctx context.Context, u URI, opts Options) (*Conn, error) {
	c, err := open(ctx, u, opts)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", u, err)
	}
	return c, nil
}

func open(ctx context.Context, u URI, opts Options) (*Conn, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DialTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	getenv := opts.getenv()

	// step names what was under way when the timeout hit.
	step := "dialing"
	timedOut := func() error {
		if parent.Err() != nil {
			return fmt.Errorf("%s: %w", step, parent.Err())
		}
		return fmt.Errorf("no answer within %s (%s): %w", timeout, step, context.DeadlineExceeded)
	}

	var (
		nd     net.Dialer
		base   net.Conn
		err    error
		lvDial socket.Dialer
		path   string
		auth   *sshAuth
	)
	switch u.Transport {
	case TransportUnix:
		path, err = LocalSocket(u, getenv, exists)
		if err != nil {
			return nil, err
		}
		base, err = nd.DialContext(ctx, "unix", path)
		if err != nil {
			if ctx.Err() != nil {
				return nil, timedOut()
			}
			return nil, unixHint(err, path, u)
		}
	case TransportTCP, TransportSSH:
		if u.Transport == TransportSSH {
			// Before dialing: a missing key is the user's to fix, not the network's.
			if auth, err = newSSHAuth(u, getenv); err != nil {
				return nil, err
			}
			defer auth.close()
		}
		base, err = nd.DialContext(ctx, "tcp", u.Addr())
		if err != nil {
			if ctx.Err() != nil {
				return nil, timedOut()
			}
			return nil, tcpHint(err, u)
		}
	default:
		return nil, fmt.Errorf("URI has no transport; use ParseURI")
	}

	// go-libvirt's Dialer takes no context: closing the stream is what stops
	// a handshake that hangs.
	stop := context.AfterFunc(ctx, func() { base.Close() })
	c := &Conn{uri: u, base: base}
	fail := func(err error) (*Conn, error) {
		stopped := stop()
		c.closeTransport()
		if !stopped {
			return nil, timedOut()
		}
		return nil, err
	}

	if u.Transport == TransportSSH {
		step = "SSH handshake"
		check, algos, err := hostKeyCheck(u, getenv, base.RemoteAddr())
		if err != nil {
			return fail(err)
		}
		cfg := &ssh.ClientConfig{
			User:              auth.user,
			Auth:              auth.methods,
			HostKeyCallback:   check,
			HostKeyAlgorithms: algos,
		}
		cc, chans, reqs, err := ssh.NewClientConn(base, u.Addr(), cfg)
		if err != nil {
			return fail(sshHint(err, u, auth))
		}
		c.ssh = ssh.NewClient(cc, chans, reqs)
		path = u.Socket
		if path == "" {
			path = DefaultRemoteSocket
		}
		lvDial = &SSHDialer{Client: c.ssh, Socket: path}
	} else {
		// Reconnecting would hand back the same, closed stream: bcvk opens
		// a new Conn instead.
		lvDial = dialers.NewAlreadyConnected(base)
	}

	step = "libvirt handshake"
	c.lv = libvirt.NewWithDialer(lvDial)
	if err := c.lv.ConnectToURI(u.DriverURI()); err != nil {
		return fail(handshakeHint(err, u, path))
	}
	if !stop() {
		// The deadline hit just as the handshake finished: the stream is closed.
		return fail(ctx.Err())
	}
	return c, nil
}

// L is the go-libvirt client for the RPCs; wrap their errors with Wrap.
func (c *Conn) L() *libvirt.Libvirt { return c.lv }

// URI is what c was opened with.
func (c *Conn) URI() URI { return c.uri }

// Close disconnects from libvirt and closes the SSH client. It is safe to
// call more than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		if c.lv != nil && c.lv.IsConnected() {
			if err := c.lv.Disconnect(); err != nil && !isClosed(err) {
				c.closeErr = fmt.Errorf("disconnecting from %s: %w", c.uri, err)
			}
		}
		c.closeTransport()
	})
	return c.closeErr
}

func (c *Conn) closeTransport() {
	if c.ssh != nil {
		_ = c.ssh.Close()
	}
	if c.base != nil {
		_ = c.base.Close()
	}
}

// DialHost connects to addr as the libvirt host sees it: over qemu+ssh from
// the remote host itself (a direct-tcpip channel), so that "127.0.0.1:PORT"
// is the VM's port forwarded on that host's loopback; for a local URI, or
// qemu+tcp to a loopback address, with a plain dial. qemu+tcp to another
// host is refused: the forward is on that host's loopback, out of reach.
func (c *Conn) DialHost(ctx context.Context, network, addr string) (net.Conn, error) {
	switch {
	case c.ssh != nil:
		nc, err := c.ssh.DialContext(ctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("connecting to %s on %s through ssh: %w", addr, c.uri.Hostname, err)
		}
		return nc, nil
	case c.uri.Transport == TransportTCP && !isLoopbackHost(c.uri.Hostname):
		return nil, fmt.Errorf("connecting to %s on %s: the VM's forwarded port is on that host's loopback, "+
			"which qemu+tcp cannot reach; use qemu+ssh://%s/system", addr, c.uri.Hostname, c.uri.Hostname)
	default:
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("connecting to %s: %w", addr, err)
		}
		return nc, nil
	}
}

// OnThisHost reports whether the libvirt host is this machine: a local
// socket, or TCP or SSH to a loopback address.
func (u URI) OnThisHost() bool { return !u.Remote() || isLoopbackHost(u.Hostname) }

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// isClosed: the far end went first, which is no failure when closing (an
// SSH channel the server already closed answers Close with io.EOF).
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, libvirt.ErrInterrupted)
}

// hinted adds what to do to an error and keeps it for errors.Is and As.
type hinted struct {
	msg string
	err error
}

func (h *hinted) Error() string { return h.msg }
func (h *hinted) Unwrap() error { return h.err }

// syscallPart is "connect: no such file or directory" out of net's
// "dial unix PATH: connect: ...", whose path the hint repeats anyway.
func syscallPart(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

func unixHint(err error, path string, u URI) error {
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		hint := StartDaemonHint
		if u.Mode == ModeSession {
			// libvirt's C client starts the session daemon itself; go-libvirt does not.
			hint = "start the session daemon as this user (virtqemud --daemon, or libvirtd --daemon)"
		}
		return &hinted{fmt.Sprintf("no libvirt daemon at %s (%s): %s", path, syscallPart(err), hint), err}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return &hinted{fmt.Sprintf("%s: permission denied: run bcvk as root or as a member of the libvirt group", path), err}
	}
	return err
}

func tcpHint(err error, u URI) error {
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	if u.Transport == TransportSSH {
		return &hinted{err.Error() + ": is sshd running there?", err}
	}
	return &hinted{err.Error() + ": is libvirtd running there (and listening on TCP)?", err}
}

func handshakeHint(err error, u URI, path string) error {
	var oce *ssh.OpenChannelError
	if errors.As(err, &oce) {
		hint := fmt.Sprintf("sshd on %s could not open %s: is libvirtd running there, may the SSH user open the socket "+
			"(root or the libvirt group), and does sshd allow it (AllowStreamLocalForwarding)?", u.Hostname, path)
		if u.Socket == "" {
			hint += " With only virtqemud there, add socket=" + SystemVirtqemudSock + " to the URI"
		}
		return &hinted{err.Error() + ": " + hint, err}
	}
	var le libvirt.Error
	if errors.As(err, &le) && u.Transport == TransportTCP && strings.Contains(strings.ToLower(le.Message), "auth") {
		// go-libvirt speaks no SASL.
		return &hinted{"libvirt handshake: " + err.Error() + `: bcvk needs auth_tcp = "none" on a TCP listener; use qemu+ssh otherwise`, err}
	}
	return fmt.Errorf("libvirt handshake: %w", err)
}
