package varlink

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// envOf is a getenv over a map.
func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestActivationEnvironment(t *testing.T) {
	const pid = 4242
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // "" is ErrNotActivated
	}{
		{"nothing passed", map[string]string{}, ""},
		{"for another process", map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "1"}, ""},
		{"no descriptors", map[string]string{"LISTEN_FDS": "0", "LISTEN_PID": "4242"}, ""},
		{"bad PID", map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "x"}, "not a process ID"},
		{"bad count", map[string]string{"LISTEN_FDS": "one", "LISTEN_PID": "4242"}, "not a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := activation(envOf(tc.env), pid, 1000)
			switch {
			case tc.want == "" && !errors.Is(err, ErrNotActivated):
				t.Errorf("got %v, want ErrNotActivated", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// env for the descriptor fd passed to this process.
func passed(n int) func(string) string {
	return envOf(map[string]string{"LISTEN_FDS": strconv.Itoa(n), "LISTEN_PID": "7"})
}

func TestActivationListeningSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.UnixListener).File() // a duplicate, as systemd would pass
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	a, err := activation(passed(1), 7, fd)
	if err != nil {
		t.Fatal(err)
	}
	if a.Listener == nil {
		t.Fatalf("got %+v, want a listener", a)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		t.Errorf("descriptor %d still open: the listener was to take it over", fd)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, NewBcvk(&fakeBackend{}, "1")) }()
	c := dial(t, sock)
	if got := c.call("org.varlink.service.GetInfo", "{}"); !strings.Contains(got, `"product":"bcvk"`) {
		t.Errorf("GetInfo over the activated socket: %s", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	// systemd's socket file stays: systemd made it and listens on it.
	if _, err := net.Dial("unix", sock); err != nil {
		t.Errorf("the activating socket is gone: %v", err)
	}
}

// `varlinkctl exec:` passes one connected socket: served until closed.
func TestActivationConnectedSocket(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := activation(passed(1), 7, fds[0])
	if err != nil {
		t.Fatal(err)
	}
	if a.Conn == nil {
		t.Fatalf("got %+v, want a connection", a)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(t.Context(), NewBcvk(&fakeBackend{}, "1")) }()
	pf := os.NewFile(uintptr(fds[1]), "peer")
	peer, err := net.FileConn(pf)
	pf.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, c: peer, r: bufio.NewReader(peer)}
	if got := c.call("io.bootc.vk.images.List", "{}"); !strings.Contains(got, "images") {
		t.Errorf("List: %s", got)
	}
	peer.Close()
	if err := <-done; err != nil {
		t.Errorf("serving the connection ended with %v", err)
	}
}

func TestActivationRefusesOtherDescriptors(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	if _, err := activation(passed(1), 7, p[0]); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("a pipe: %v", err)
	}
	unix.Close(p[0])
	if _, err := activation(passed(2), 7, 100000); err == nil || !strings.Contains(err.Error(), "pass one") {
		t.Errorf("two descriptors: %v", err)
	}
}
