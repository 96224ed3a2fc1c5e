package conn

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func mustParse(t *testing.T, s string) URI {
	t.Helper()
	u, err := ParseURI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// checkRPC makes the calls bcvk relies on through c: a plain answer, and a
// libvirt error that keeps its code through Wrap.
func checkRPC(t *testing.T, c *Conn) {
	t.Helper()
	v, err := c.L().ConnectGetLibVersion()
	if err != nil {
		t.Fatal(Wrap("get libvirt version", err))
	}
	if v != fakeLibVersion {
		t.Errorf("version %d, want %d", v, fakeLibVersion)
	}
	_, err = c.L().DomainLookupByName("vm1")
	err = Wrap("look up domain vm1", err)
	if want := "look up domain vm1: Domain not found: no domain with matching name 'vm1'"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if !IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = false", err)
	}
}

func checkEcho(t *testing.T, nc net.Conn) {
	t.Helper()
	defer nc.Close()
	if _, err := nc.Write([]byte("SSH-2.0-ping\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 14)
	if _, err := io.ReadFull(nc, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "SSH-2.0-ping\r\n" {
		t.Fatalf("echo gave %q", buf)
	}
}

func TestOpenUnix(t *testing.T) {
	f := &fakeLibvirt{}
	sock := startFakeUnix(t, f)
	for _, uri := range []string{"qemu+unix:///system?socket=" + sock, "qemu:///session?socket=" + sock} {
		t.Run(uri, func(t *testing.T) {
			u := mustParse(t, uri)
			c, err := Open(t.Context(), u, Options{Getenv: envMap(nil)})
			if err != nil {
				t.Fatal(err)
			}
			checkRPC(t, c)
			// Locally, the VM's forwarded port is the local loopback.
			nc, err := c.DialHost(t.Context(), "tcp", startEcho(t))
			if err != nil {
				t.Fatal(err)
			}
			checkEcho(t, nc)
			if c.URI() != u {
				t.Errorf("URI() = %v", c.URI())
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
	if got, want := f.openedNames(), []string{"qemu:///system", "qemu:///session"}; !slices.Equal(got, want) {
		t.Errorf("ConnectOpen names %q, want %q", got, want)
	}
}

func TestOpenUnixNoDaemon(t *testing.T) {
	p := filepath.Join(shortTempDir(t), "libvirt-sock")
	_, err := Open(t.Context(), mustParse(t, "qemu:///system?socket="+p), Options{})
	want := fmt.Sprintf("connecting to qemu:///system?socket=%s: no libvirt daemon at %s (connect: no such file or directory): "+
		"start libvirtd (or virtqemud), e.g. hack/libvirt-host.sh start", p, p)
	if err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("errors.Is(err, ENOENT) = false")
	}
}

func TestOpenTCP(t *testing.T) {
	f := &fakeLibvirt{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.serve(t, ln)
	u := mustParse(t, "qemu+tcp://"+ln.Addr().String()+"/system")
	c, err := Open(t.Context(), u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkRPC(t, c)
	nc, err := c.DialHost(t.Context(), "tcp", startEcho(t))
	if err != nil {
		t.Fatal(err)
	}
	checkEcho(t, nc)
}

func TestOpenTCPRefused(t *testing.T) {
	// A port that was just free: good enough to be refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Open(t.Context(), mustParse(t, "qemu+tcp://"+addr+"/system"), Options{})
	if err == nil {
		t.Fatal("Open succeeded")
	}
	for _, want := range []string{"connecting to qemu+tcp://" + addr + "/system: dial tcp " + addr, "connection refused: is libvirtd running there (and listening on TCP)?"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Error("errors.Is(err, ECONNREFUSED) = false")
	}
}

func TestOpenTimeout(t *testing.T) {
	sock := startFakeUnix(t, &fakeLibvirt{silent: true})
	u := mustParse(t, "qemu:///system?socket="+sock)
	start := time.Now()
	_, err := Open(t.Context(), u, Options{Timeout: 200 * time.Millisecond})
	if err == nil {
		t.Fatal("Open succeeded")
	}
	if want := "connecting to " + u.String() + ": no answer within 200ms (libvirt handshake)"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want prefix %q", err, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("errors.Is(err, DeadlineExceeded) = false")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %s", d)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err = Open(ctx, u, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestDialHostRemoteTCP(t *testing.T) {
	c := &Conn{uri: mustParse(t, "qemu+tcp://192.0.2.1/system")}
	_, err := c.DialHost(t.Context(), "tcp", "127.0.0.1:2222")
	want := "connecting to 127.0.0.1:2222 on 192.0.2.1: the VM's forwarded port is on that host's loopback, " +
		"which qemu+tcp cannot reach; use qemu+ssh://192.0.2.1/system"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "127.1.2.3", "::1"} {
		if !isLoopbackHost(h) {
			t.Errorf("isLoopbackHost(%q) = false", h)
		}
	}
	for _, h := range []string{"192.0.2.1", "localhost.example", "::", ""} {
		if isLoopbackHost(h) {
			t.Errorf("isLoopbackHost(%q) = true", h)
		}
	}
}

// sshFixture is an sshd with a key and a known_hosts file for it, in front of
// a fake libvirt.
type sshFixture struct {
	srv        *sshServer
	fake       *fakeLibvirt
	sock       string
	home       string
	key        string
	knownHosts string
}

func newSSHFixture(t *testing.T) *sshFixture {
	x := &sshFixture{fake: &fakeLibvirt{}, home: t.TempDir()}
	x.sock = startFakeUnix(t, x.fake)
	x.key = filepath.Join(x.home, "id_test")
	x.srv = startSSHServer(t, writeKey(t, x.key))
	x.knownHosts = filepath.Join(x.home, "known_hosts")
	writeKnownHosts(t, x.knownHosts, x.srv.addr, x.srv.hostKey.PublicKey())
	return x
}

func (x *sshFixture) uri(t *testing.T, extra string) URI {
	return mustParse(t, fmt.Sprintf("qemu+ssh://tester@%s/system?keyfile=%s&known_hosts=%s&socket=%s%s",
		x.srv.addr, x.key, x.knownHosts, x.sock, extra))
}

func (x *sshFixture) opts() Options {
	return Options{Getenv: envMap(map[string]string{"HOME": x.home})}
}

func TestOpenSSH(t *testing.T) {
	x := newSSHFixture(t)
	c, err := Open(t.Context(), x.uri(t, ""), x.opts())
	if err != nil {
		t.Fatal(err)
	}
	checkRPC(t, c)
	if got := x.fake.openedNames(); !slices.Equal(got, []string{"qemu:///system"}) {
		t.Errorf("ConnectOpen names %q", got)
	}
	if got := x.srv.loginNames(); !slices.Equal(got, []string{"tester"}) {
		t.Errorf("ssh logins %q", got)
	}

	// The VM's port, on the far host's loopback, over the same SSH client.
	nc, err := c.DialHost(t.Context(), "tcp", startEcho(t))
	if err != nil {
		t.Fatal(err)
	}
	checkEcho(t, nc)
	_, err = c.DialHost(t.Context(), "tcp", "127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "connecting to 127.0.0.1:1 on 127.0.0.1 through ssh: ") {
		t.Errorf("DialHost to a closed port: %v", err)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DialHost(t.Context(), "tcp", "127.0.0.1:1"); err == nil {
		t.Error("DialHost after Close succeeded")
	}
}

// The dialer alone: go-libvirt's socket.Dialer on bcvk's SSH client, bytes
// both ways.
func TestSSHDialer(t *testing.T) {
	x := newSSHFixture(t)
	echoSock := filepath.Join(shortTempDir(t), "echo")
	ln, err := net.Listen("unix", echoSock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	c, err := Open(t.Context(), x.uri(t, ""), x.opts())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nc, err := (&SSHDialer{Client: c.ssh, Socket: echoSock}).Dial()
	if err != nil {
		t.Fatal(err)
	}
	checkEcho(t, nc)
}

func TestOpenSSHRefusals(t *testing.T) {
	x := newSSHFixture(t)
	otherKey := filepath.Join(x.home, "id_other")
	writeKey(t, otherKey)
	wrongKH := filepath.Join(x.home, "kh_wrong")
	writeKnownHosts(t, wrongKH, x.srv.addr, writeKey(t, filepath.Join(x.home, "id_unused")))
	missingKH := filepath.Join(x.home, "kh_missing")
	emptyKH := filepath.Join(x.home, "kh_empty")
	writeKnownHosts(t, emptyKH, x.srv.addr)
	missingSock := filepath.Join(x.home, "no-such-sock")
	base := fmt.Sprintf("qemu+ssh://tester@%s/system?socket=%s", x.srv.addr, x.sock)

	for _, tc := range []struct {
		name, uri string
		env       map[string]string
		want      []string
		hostKey   bool
	}{
		{name: "unknown host", uri: base + "&keyfile=" + x.key + "&known_hosts=" + emptyKH, hostKey: true,
			want: []string{"the SSH host key of " + x.srv.addr + " is not in " + emptyKH,
				"ssh-keyscan -p " + x.srv.port + " 127.0.0.1 >> " + emptyKH, "no_verify=1"}},
		{name: "no known_hosts file", uri: base + "&keyfile=" + x.key + "&known_hosts=" + missingKH, hostKey: true,
			want: []string{"is not in " + missingKH, "ssh-keyscan -p " + x.srv.port + " 127.0.0.1 >> " + missingKH}},
		{name: "default known_hosts", uri: base + "&keyfile=" + x.key, env: map[string]string{"HOME": x.home}, hostKey: true,
			want: []string{"is not in " + filepath.Join(x.home, ".ssh", "known_hosts")}},
		{name: "changed host key", uri: base + "&keyfile=" + x.key + "&known_hosts=" + wrongKH, hostKey: true,
			want: []string{"does not match " + wrongKH + " line 1 (possible man-in-the-middle)",
				"ssh-keygen -R '[127.0.0.1]:" + x.srv.port + "' -f " + wrongKH}},
		{name: "key not authorized", uri: base + "&keyfile=" + otherKey + "&known_hosts=" + x.knownHosts,
			want: []string{"unable to authenticate", "tester@127.0.0.1 accepted none of bcvk's keys (" + otherKey + ")", "keyfile=PATH"}},
		{name: "no key at all", uri: base + "&known_hosts=" + x.knownHosts, env: map[string]string{"HOME": x.home},
			want: []string{"no SSH key to log in with", "pass keyfile=PATH"}},
		{name: "missing keyfile", uri: base + "&keyfile=" + otherKey + ".nope&known_hosts=" + x.knownHosts,
			want: []string{"SSH key: open " + otherKey + ".nope: no such file or directory"}},
		{name: "no remote socket", uri: fmt.Sprintf("qemu+ssh://tester@%s/system?keyfile=%s&known_hosts=%s&socket=%s", x.srv.addr, x.key, x.knownHosts, missingSock),
			want: []string{"opening " + missingSock + " through ssh", "sshd on 127.0.0.1 could not open " + missingSock, "AllowStreamLocalForwarding"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := mustParse(t, tc.uri)
			_, err := Open(t.Context(), u, Options{Getenv: envMap(tc.env)})
			if err == nil {
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "connecting to "+u.String()+": ") {
				t.Errorf("error %q does not name the URI", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var hk *HostKeyError
			if errors.As(err, &hk) != tc.hostKey {
				t.Errorf("errors.As(HostKeyError) = %v", !tc.hostKey)
			}
		})
	}

	t.Run("no_verify=1 skips the host key check", func(t *testing.T) {
		u := mustParse(t, base+"&keyfile="+x.key+"&known_hosts="+wrongKH+"&no_verify=1")
		c, err := Open(t.Context(), u, x.opts())
		if err != nil {
			t.Fatal(err)
		}
		checkRPC(t, c)
		c.Close()
	})
}

// Defaults: the key from ~/.ssh, the host key from ~/.ssh/known_hosts, and
// the host key algorithm chosen from what known_hosts holds.
func TestOpenSSHDefaults(t *testing.T) {
	x := newSSHFixture(t)
	sshDir := filepath.Join(x.home, ".ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	x.srv = startSSHServer(t, writeKey(t, filepath.Join(sshDir, "id_ed25519")))
	writeKnownHosts(t, filepath.Join(sshDir, "known_hosts"), x.srv.addr, x.srv.hostKey.PublicKey())
	u := mustParse(t, fmt.Sprintf("qemu+ssh://tester@%s/system?socket=%s", x.srv.addr, x.sock))
	c, err := Open(t.Context(), u, x.opts())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkRPC(t, c)
}

func TestKnownAlgorithms(t *testing.T) {
	x := newSSHFixture(t)
	u := x.uri(t, "")
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	_, algos, err := hostKeyCheck(u, envMap(nil), remote)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(algos, []string{ssh.KeyAlgoED25519}) {
		t.Errorf("algorithms %q", algos)
	}
	if got := algorithmsFor(ssh.KeyAlgoRSA); got[0] != ssh.KeyAlgoRSASHA512 {
		t.Errorf("RSA algorithms %q", got)
	}
}

func TestWrap(t *testing.T) {
	if Wrap("x", nil) != nil {
		t.Error("Wrap(nil) != nil")
	}
	notFound := libvirt.Error{Code: uint32(libvirt.ErrNoStorageVol), Message: "Storage volume not found: no storage vol with matching name 'v'"}
	err := Wrap("delete volume v", fmt.Errorf("inner: %w", notFound))
	if got := err.Error(); got != "delete volume v: inner: Storage volume not found: no storage vol with matching name 'v'" {
		t.Errorf("message %q", got)
	}
	var le libvirt.Error
	if !errors.As(err, &le) || le.Code != uint32(libvirt.ErrNoStorageVol) {
		t.Errorf("errors.As: %v", le)
	}
	if code, ok := Code(err); !ok || code != libvirt.ErrNoStorageVol {
		t.Errorf("Code = %v, %v", code, ok)
	}
	for _, tc := range []struct {
		code                      libvirt.ErrorNumber
		notFound, invalid, exists bool
	}{
		{libvirt.ErrNoDomain, true, false, false},
		{libvirt.ErrNoStorageVol, true, false, false},
		{libvirt.ErrNoStoragePool, true, false, false},
		{libvirt.ErrOperationInvalid, false, true, false},
		{libvirt.ErrDomExist, false, false, true},
		{libvirt.ErrStorageVolExist, false, false, true},
		{libvirt.ErrOperationFailed, false, false, false},
	} {
		err := Wrap("op", libvirt.Error{Code: uint32(tc.code), Message: "m"})
		if IsNotFound(err) != tc.notFound || IsInvalidOperation(err) != tc.invalid || IsAlreadyExists(err) != tc.exists {
			t.Errorf("code %d: IsNotFound %v IsInvalidOperation %v IsAlreadyExists %v", tc.code,
				IsNotFound(err), IsInvalidOperation(err), IsAlreadyExists(err))
		}
	}
	if IsNotFound(errors.New("Domain not found")) {
		t.Error("IsNotFound matched a plain error")
	}
	if got := Wrap("start domain d", libvirt.ErrInterrupted).Error(); !strings.Contains(got, "start domain d: the connection to libvirt was lost") {
		t.Errorf("interrupted: %q", got)
	}
	if got := Wrap("start domain d", syscall.EINVAL); !strings.Contains(got.Error(), "connection to libvirt was lost") || !errors.Is(got, syscall.EINVAL) {
		t.Errorf("EINVAL: %q", got)
	}
}

// No key file at all: the key comes from the agent at SSH_AUTH_SOCK.
func TestOpenSSHAgent(t *testing.T) {
	x := newSSHFixture(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(shortTempDir(t), "agent")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	x.srv = startSSHServer(t, signer.PublicKey())
	writeKnownHosts(t, x.knownHosts, x.srv.addr, x.srv.hostKey.PublicKey())
	u := mustParse(t, fmt.Sprintf("qemu+ssh://tester@%s/system?known_hosts=%s&socket=%s", x.srv.addr, x.knownHosts, x.sock))
	c, err := Open(t.Context(), u, Options{Getenv: envMap(map[string]string{"HOME": x.home, "SSH_AUTH_SOCK": sock})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkRPC(t, c)
}
