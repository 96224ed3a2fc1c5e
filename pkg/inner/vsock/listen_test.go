package vsock

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/vsock"
	"golang.org/x/sys/unix"
)

func TestUnixListen(t *testing.T) {
	uds := filepath.Join(t.TempDir(), "vm.vsock")
	l, err := UnixListen(uds, 4000)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Addr().String(); got != uds+"_4000" {
		t.Fatalf("listening on %s", got)
	}
	// What the backend does for a guest connection to host port 4000.
	c, err := net.Dial("unix", uds+"_4000")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestUnixListenReplacesStaleSocket(t *testing.T) {
	uds := filepath.Join(t.TempDir(), "vm.vsock")
	// A socket file left behind, as by a killed earlier run.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: uds + "_5", Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	l, err := UnixListen(uds, 5)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

func TestUnixListenKeepsOtherFiles(t *testing.T) {
	uds := filepath.Join(t.TempDir(), "vm.vsock")
	if err := os.WriteFile(uds+"_5", []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := UnixListen(uds, 5)
	if err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(uds + "_5"); string(b) != "data" {
		t.Fatal("the regular file was touched")
	}
}

func TestListenRandomPort(t *testing.T) {
	taken := map[uint32]bool{1024: true, 1025: true}
	var tried []uint32
	listen := func(port uint32) (net.Listener, error) {
		tried = append(tried, port)
		if taken[port] {
			return nil, os.NewSyscallError("bind", unix.EADDRINUSE)
		}
		return net.Listen("unix", filepath.Join(t.TempDir(), "l"))
	}
	l, port, err := ListenRandomPort(listen, seq(0), 5)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if port != 1026 || len(tried) != 3 {
		t.Fatalf("port %d after %v", port, tried)
	}

	tried = nil
	_, _, err = ListenRandomPort(listen, func() uint32 { return 0 }, 4)
	if err == nil || len(tried) != 4 {
		t.Fatalf("got %v after %v", err, tried)
	}

	tried = nil
	fail := func(uint32) (net.Listener, error) { tried = append(tried, 0); return nil, syscall.EAFNOSUPPORT }
	if _, _, err := ListenRandomPort(fail, nil, 4); !errors.Is(err, syscall.EAFNOSUPPORT) || len(tried) != 1 {
		t.Fatalf("got %v after %d attempts", err, len(tried))
	}

	for _, r := range []uint32{0, 0xFFFFFFFE, 0xFFFFFFFF} {
		_, port, _ := ListenRandomPort(func(uint32) (net.Listener, error) { return nil, nil }, func() uint32 { return r }, 1)
		if port < 1024 || port == 0xFFFFFFFF {
			t.Fatalf("rnd %#x gave port %#x", r, port)
		}
	}
}

// pipeListener hands out prepared connections.
type pipeListener struct {
	net.Listener
	conns chan net.Conn
}

func (l *pipeListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}

type addrConn struct {
	net.Conn
	remote net.Addr
	closed bool
}

func (c *addrConn) RemoteAddr() net.Addr { return c.remote }
func (c *addrConn) Close() error         { c.closed = true; return nil }

func TestFromCID(t *testing.T) {
	other := &addrConn{remote: &vsock.Addr{ContextID: 99, Port: 1}}
	notVsock := &addrConn{remote: &net.UnixAddr{Name: "x"}}
	ours := &addrConn{remote: &vsock.Addr{ContextID: 7, Port: 1}}
	pl := &pipeListener{conns: make(chan net.Conn, 3)}
	pl.conns <- other
	pl.conns <- notVsock
	pl.conns <- ours
	close(pl.conns)
	l := FromCID(pl, 7)
	c, err := l.Accept()
	if err != nil || c != ours {
		t.Fatalf("got %v, %v", c, err)
	}
	if !other.closed || !notVsock.closed || ours.closed {
		t.Fatal("foreign connections must be closed, ours kept")
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("got %v", err)
	}
}

func TestKernelListenLoopback(t *testing.T) {
	// Only where the host has AF_VSOCK with a loopback transport.
	l, port, err := ListenRandomPort(KernelListen, nil, 10)
	if err != nil {
		t.Skipf("no AF_VSOCK here: %v", err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	c, err := KernelDialer{CID: unix.VMADDR_CID_LOCAL}.Dial(ctx, port)
	if err != nil {
		l.Close()
		t.Skipf("no vsock loopback: %v", err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestKernelListenInUse(t *testing.T) {
	l1, port, err := ListenRandomPort(KernelListen, nil, 10)
	if err != nil {
		// No AF_VSOCK: the error still comes with a nil interface.
		if l, err := KernelListen(5000); err == nil || l != nil {
			t.Fatalf("got %#v, %v", l, err)
		}
		t.Skipf("no AF_VSOCK here: %v", err)
	}
	defer l1.Close()
	// ListenRandomPort retries on exactly this error.
	l, err := KernelListen(port)
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("second listener on port %d: %v, want EADDRINUSE", port, err)
	}
	if l != nil {
		t.Fatalf("error came with a non-nil listener %#v", l)
	}
}
