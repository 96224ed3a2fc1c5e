// Package proxy joins standard input and output to the guest's sshd, so
// that `podman exec -i VM bcvk-inner proxy ssh` can be an ssh ProxyCommand:
// plain ssh, scp, rsync and ansible on the host then reach the guest with
// nothing published on a host port. The supervisor records where sshd is
// (Target): vsock or the TCP port that QEMU forwards.
package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/bcvk/bcvk/pkg/inner/vsock"
	"github.com/bcvk/bcvk/pkg/spec"
)

// TargetFile is the Target's name in the run directory.
const TargetFile = "ssh-proxy.json"

// DialTimeout bounds the connection to the guest's sshd.
const DialTimeout = 10 * time.Second

// Target says how to reach the guest's sshd.
type Target struct {
	Transport string `json:"transport"` // spec.TransportVsock or spec.TransportTCP
	// TCPAddr is QEMU's forward on the container's loopback.
	TCPAddr string `json:"tcpAddr,omitempty"`
	// VsockSocket is the userspace backend's socket for host-initiated
	// connections; VsockCID the guest's CID with the kernel's vhost-vsock.
	VsockSocket string `json:"vsockSocket,omitempty"`
	VsockCID    uint32 `json:"vsockCID,omitempty"`
	VsockPort   uint32 `json:"vsockPort,omitempty"`
}

// Dial connects to the target.
func (t Target) Dial(ctx context.Context) (net.Conn, error) {
	switch t.Transport {
	case spec.TransportTCP:
		var d net.Dialer
		return d.DialContext(ctx, "tcp", t.TCPAddr)
	case spec.TransportVsock:
		if t.VsockSocket != "" {
			return vsock.UnixDialer{Path: t.VsockSocket}.Dial(ctx, t.VsockPort)
		}
		return vsock.KernelDialer{CID: t.VsockCID}.Dial(ctx, t.VsockPort)
	}
	return nil, fmt.Errorf("unknown transport %q", t.Transport)
}

// WriteTarget records t in dir (atomically: the proxy may read at any time).
func WriteTarget(dir string, t Target) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+TargetFile+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dir+"/"+TargetFile)
}

// ReadTarget reads the target the supervisor recorded in dir.
func ReadTarget(dir string) (Target, error) {
	var t Target
	b, err := os.ReadFile(dir + "/" + TargetFile)
	if errors.Is(err, os.ErrNotExist) {
		return t, errors.New("the VM has not chosen its SSH transport yet (it is still starting)")
	}
	if err != nil {
		return t, err
	}
	return t, json.Unmarshal(b, &t)
}

// Run copies in to the guest's sshd and back until both directions end.
func Run(ctx context.Context, t Target, in io.Reader, out io.Writer) error {
	dctx, cancel := context.WithTimeout(ctx, DialTimeout)
	c, err := t.Dial(dctx)
	cancel()
	if err != nil {
		return err
	}
	return Splice(c, in, out)
}

// Splice copies in to c and c to out until both directions end.
func Splice(c net.Conn, in io.Reader, out io.Writer) error {
	defer c.Close()
	go func() {
		_, _ = io.Copy(c, in)
		// Tell the server that the client is done, and keep reading.
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	_, err := io.Copy(out, c)
	return err
}
