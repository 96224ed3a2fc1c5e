package vsock

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeBackend serves vhost-device-vsock's host side on a unix socket:
// it reads "CONNECT <port>\n" and hands the connection and the request
// to handle. It returns the socket path.
func fakeBackend(t *testing.T, handle func(c net.Conn, req string)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vm.vsock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				handle(c, req)
			}()
		}
	}()
	return path
}

func TestUnixDialerOKKeepsEarlyBytes(t *testing.T) {
	path := fakeBackend(t, func(c net.Conn, req string) {
		if req != "CONNECT 22\n" {
			c.Write([]byte("bad request " + req))
			return
		}
		// The reply and the guest's first bytes in one write.
		c.Write([]byte("OK 1073741824\nSSH-2.0-OpenSSH_9.6\r\n"))
		io.Copy(c, c)
	})
	c, err := UnixDialer{Path: path}.Dial(t.Context(), 22)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	banner, err := r.ReadString('\n')
	if err != nil || banner != "SSH-2.0-OpenSSH_9.6\r\n" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	// Echo after OK, then half-close: the backend sees EOF and the echo
	// ends.
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ReadString('\n'); got != "ping\n" {
		t.Fatalf("echo %q, %v", got, err)
	}
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T has no CloseWrite", c)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after CloseWrite: %q, %v", rest, err)
	}
}

func TestUnixDialerSmallReads(t *testing.T) {
	path := fakeBackend(t, func(c net.Conn, _ string) {
		c.Write([]byte("OK 5\nabcdef"))
	})
	c, err := UnixDialer{Path: path}.Dial(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []byte
	b := make([]byte, 2)
	for {
		n, err := c.Read(b)
		got = append(got, b[:n]...)
		if err != nil {
			break
		}
	}
	if string(got) != "abcdef" {
		t.Fatalf("got %q", got)
	}
}

func TestUnixDialerRefused(t *testing.T) {
	path := fakeBackend(t, func(net.Conn, string) {})
	_, err := UnixDialer{Path: path}.Dial(t.Context(), 22)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("got %v, want ErrRefused", err)
	}
	if err.Error() != "the guest refused port 22" {
		t.Fatalf("message %q", err)
	}
}

func TestUnixDialerGarbage(t *testing.T) {
	for _, tc := range []struct{ name, reply, want string }{
		{"error line", "ERR no\n", `unexpected reply "ERR no\n"`},
		{"no port", "OK\n", `unexpected reply "OK\n"`},
		{"bad port", "OK x\n", `unexpected reply "OK x\n"`},
		{"partial then close", "OK 12", `unexpected reply "OK 12"`},
		{"control bytes", "\x1b[2J\x00\n", `unexpected reply "\x1b[2J\x00\n"`},
		{"endless", strings.Repeat("A", 10000), `unexpected reply "` + strings.Repeat("A", maxReply) + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := fakeBackend(t, func(c net.Conn, _ string) { c.Write([]byte(tc.reply)) })
			_, err := UnixDialer{Path: path}.Dial(t.Context(), 22)
			if err == nil || errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
}

func TestUnixDialerNoAnswer(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	path := fakeBackend(t, func(net.Conn, string) { <-hold })
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := UnixDialer{Path: path}.Dial(ctx, 22)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrRefused) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestUnixDialerCancel(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	path := fakeBackend(t, func(net.Conn, string) { <-hold })
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := UnixDialer{Path: path}.Dial(ctx, 22)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestUnixDialerNoBackend(t *testing.T) {
	_, err := UnixDialer{Path: filepath.Join(t.TempDir(), "none")}.Dial(t.Context(), 22)
	if err == nil || errors.Is(err, ErrRefused) || !strings.HasPrefix(err.Error(), "connecting to the vsock backend: ") {
		t.Fatalf("got %v", err)
	}
}

func TestKernelDialerHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	_, err := KernelDialer{CID: 3}.Dial(ctx, 22)
	if err == nil {
		t.Fatal("dial succeeded with a cancelled context")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestUnixDialerContextEndsAfterOK(t *testing.T) {
	path := fakeBackend(t, func(c net.Conn, _ string) {
		c.Write([]byte("OK 7\n"))
		io.Copy(c, c)
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	c, err := UnixDialer{Path: path}.Dial(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cancel()
	// Neither the cancellation nor the handshake's deadline may reach the
	// established connection.
	time.Sleep(20 * time.Millisecond)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'x' {
		t.Fatalf("got %q, %v", b, err)
	}
}
