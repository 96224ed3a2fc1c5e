// Package proxy joins standard input and output to a TCP connection, so
// that `podman exec -i VM bcvk-inner proxy 127.0.0.1:2222` can be an ssh
// ProxyCommand: plain ssh, scp, rsync and ansible on the host then reach the
// guest with nothing published on a host port.
package proxy

import (
	"io"
	"net"
	"time"
)

// Run copies in to addr and addr to out until both directions end.
func Run(addr string, in io.Reader, out io.Writer) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		_, _ = io.Copy(c, in)
		// Tell the server that the client is done, and keep reading.
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, err = io.Copy(out, c)
	return err
}
