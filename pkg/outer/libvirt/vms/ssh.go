package vms

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/bcvk/bcvk/pkg/outer/libvirt/conn"
	"github.com/bcvk/bcvk/pkg/sshclient"
)

// bannerTimeout bounds one attempt to read sshd's greeting: under TCG a
// booting guest's sshd can take seconds to answer.
const bannerTimeout = 20 * time.Second

// retryEvery is the pause between attempts while the guest boots.
const retryEvery = time.Second

// WaitSSH waits until the VM's sshd greets through the forward on the
// libvirt host (reached through the connection's transport), or the VM
// stops, or timeout.
func (m *Manager) WaitSSH(ctx context.Context, v VM, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(v.Meta.SSHPort)))
	t := time.NewTicker(retryEvery)
	defer t.Stop()
	var last error
	for {
		if err := greets(ctx, m.C, addr); err == nil {
			return nil
		} else {
			last = err
		}
		st, _, err := m.L().DomainGetState(v.dom, 0)
		if err != nil {
			return lerr("reading the state of domain "+v.Name, err)
		}
		if golibvirt.DomainState(st) == golibvirt.DomainShutoff || golibvirt.DomainState(st) == golibvirt.DomainCrashed {
			return fmt.Errorf("%s is %s, so SSH cannot answer: `bcvk libvirt start %s`, and see its console log %s on the libvirt host", v.Name, State(st), v.Name, m.consoleLog(v.Name))
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s did not answer SSH on the libvirt host's port %d within %s (last: %v); its console log is %s on the libvirt host (raise --timeout under emulation)", v.Name, v.Meta.SSHPort, timeout, last, m.consoleLog(v.Name))
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

// greets connects once and reads an SSH greeting.
func greets(ctx context.Context, c *conn.Conn, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, bannerTimeout)
	defer cancel()
	nc, err := c.DialHost(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	line, err := bufio.NewReader(io.LimitReader(nc, 256)).ReadString('\n')
	if err != nil {
		return fmt.Errorf("no SSH greeting: %w", err)
	}
	if !strings.HasPrefix(line, "SSH-") {
		return fmt.Errorf("not an SSH greeting: %.40q", line)
	}
	return nil
}

// SSHArgs is ssh's argument list (without "ssh") into the VM: ssh reaches
// the forward through `bcvk libvirt proxy`, which uses the same transport
// as the libvirt connection (a jump over the URI's SSH host, or a plain
// connection to a local one). self is bcvk's own path.
func (m *Manager) SSHArgs(v VM, self string, extra, cmd []string) []string {
	return sshclient.Args(v.SSH.KeyPath, ProxyCommand(self, m.C.URI().String(), v.Meta.SSHPort), extra, v.SSH.User, cmd)
}

// ProxyCommand is the ssh ProxyCommand that reaches port on the libvirt
// host of uri. ssh expands %-tokens in it, hence the doubling.
func ProxyCommand(self, uri string, port uint16) string {
	q := sshclient.QuoteCommand([]string{self, "libvirt", "--connect", uri, "proxy", strconv.Itoa(int(port))})
	return strings.ReplaceAll(q, "%", "%%")
}

// Proxy copies between in/out and port on the libvirt host's loopback.
func Proxy(ctx context.Context, c *conn.Conn, port uint16, in io.Reader, out io.Writer) error {
	nc, err := c.DialHost(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	go func() {
		_, _ = io.Copy(nc, in)
		if cw, ok := nc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	// The session ends when the guest's side does.
	_, err = io.Copy(out, nc)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
