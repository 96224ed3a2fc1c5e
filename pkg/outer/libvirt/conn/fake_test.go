package conn

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/digitalocean/go-libvirt"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// libvirt's RPC numbers (go-libvirt keeps them internal).
const (
	remoteProgram       = 0x20008086
	procConnectOpen     = 1
	procConnectClose    = 2
	procLookupByName    = 23
	procAuthList        = 66
	procGetLibVersion   = 157
	fakeLibVersion      = 11003000
	replyType           = 1
	statusOK, statusErr = 0, 1
)

// fakeLibvirt answers, with libvirt's framing (length, 24-byte header, XDR),
// the few calls Open and the tests make. When silent it reads and never
// answers, like a daemon that hangs.
type fakeLibvirt struct {
	silent bool

	mu     sync.Mutex
	opened []string // the names ConnectOpen asked for
	conns  []net.Conn
}

// serve answers on ln until the test ends.
func (f *fakeLibvirt) serve(t *testing.T, ln net.Listener) {
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			go f.handle(c)
		}
	}()
}

func (f *fakeLibvirt) openedNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.opened...)
}

func (f *fakeLibvirt) handle(c net.Conn) {
	defer c.Close()
	for {
		var lenBuf [4]byte
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(lenBuf[:])
		if n < 28 || n > 1<<20 {
			return
		}
		pkt := make([]byte, n-4)
		if _, err := io.ReadFull(c, pkt); err != nil {
			return
		}
		if f.silent {
			continue
		}
		proc := binary.BigEndian.Uint32(pkt[8:12])
		serial := binary.BigEndian.Uint32(pkt[16:20])
		args := pkt[24:]
		status, body := uint32(statusOK), []byte(nil)
		switch proc {
		case procAuthList:
			body = xdrU32(nil, 1)  // one auth type:
			body = xdrU32(body, 0) // none
		case procConnectOpen:
			// remote_string name: a 4-byte "present" word, then the string.
			f.mu.Lock()
			f.opened = append(f.opened, xdrString(args[4:]))
			f.mu.Unlock()
		case procConnectClose:
		case procGetLibVersion:
			body = binary.BigEndian.AppendUint64(nil, fakeLibVersion)
		case procLookupByName:
			name := xdrString(args)
			status, body = statusErr, remoteError(libvirt.ErrNoDomain, "Domain not found: no domain with matching name '"+name+"'")
		default:
			status, body = statusErr, remoteError(libvirt.ErrNoSupport, "this function is not supported by the fake")
		}
		hdr := make([]byte, 0, 28+len(body))
		hdr = xdrU32(hdr, uint32(28+len(body)))
		for _, w := range []uint32{remoteProgram, 1, proc, replyType, serial, status} {
			hdr = xdrU32(hdr, w)
		}
		if _, err := c.Write(append(hdr, body...)); err != nil {
			return
		}
		if proc == procConnectClose {
			return
		}
	}
}

func xdrU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func xdrString(b []byte) string {
	if len(b) < 4 {
		return ""
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return ""
	}
	return string(b[4 : 4+n])
}

func xdrAppendString(b []byte, s string) []byte {
	b = xdrU32(b, uint32(len(s)))
	b = append(b, s...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// remoteError is libvirt's remote_error: code, domain, message (optional
// string), level, then null pointers and zeros that go-libvirt does not read.
func remoteError(code libvirt.ErrorNumber, msg string) []byte {
	b := xdrU32(nil, uint32(code))
	b = xdrU32(b, 10) // VIR_FROM_QEMU
	b = xdrU32(b, 1)
	b = xdrAppendString(b, msg)
	b = xdrU32(b, 2) // VIR_ERR_ERROR
	for range 7 {
		b = xdrU32(b, 0)
	}
	return b
}

// shortTempDir is for unix sockets, whose paths must stay under 108 bytes,
// which t.TempDir under a long test name may not.
func shortTempDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "bcvkc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// startFakeUnix serves a fake libvirt on a unix socket and returns its path.
func startFakeUnix(t *testing.T, f *fakeLibvirt) string {
	p := filepath.Join(shortTempDir(t), "libvirt-sock")
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	f.serve(t, ln)
	return p
}

// startEcho stands for the VM's forwarded SSH port: it echoes what it reads.
func startEcho(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// sshServer is an in-process sshd with what bcvk uses: public key login,
// direct-streamlocal@openssh.com (the libvirt socket) and direct-tcpip (the
// VM's forwarded port).
type sshServer struct {
	addr    string
	port    string
	hostKey ssh.Signer

	mu     sync.Mutex
	conns  []io.Closer
	logins []string
}

func startSSHServer(t *testing.T, authorized ssh.PublicKey) *sshServer {
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	s := &sshServer{hostKey: hostKey}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(md ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) != string(authorized.Marshal()) {
				return nil, errors.New("unknown key")
			}
			s.mu.Lock()
			s.logins = append(s.logins, md.User())
			s.mu.Unlock()
			return nil, nil
		},
	}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	_, s.port, _ = net.SplitHostPort(s.addr)
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.track(nc)
			go s.handle(nc, cfg)
		}
	}()
	return s
}

func (s *sshServer) track(c io.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = append(s.conns, c)
}

func (s *sshServer) handle(nc net.Conn, cfg *ssh.ServerConfig) {
	_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		nc.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		var network, target string
		switch nch.ChannelType() {
		case "direct-streamlocal@openssh.com":
			var m struct {
				Path      string
				Reserved0 string
				Reserved1 uint32
			}
			if err := ssh.Unmarshal(nch.ExtraData(), &m); err != nil {
				nch.Reject(ssh.Prohibited, "bad payload")
				continue
			}
			network, target = "unix", m.Path
		case "direct-tcpip":
			var m struct {
				Host     string
				Port     uint32
				OrigHost string
				OrigPort uint32
			}
			if err := ssh.Unmarshal(nch.ExtraData(), &m); err != nil {
				nch.Reject(ssh.Prohibited, "bad payload")
				continue
			}
			network, target = "tcp", net.JoinHostPort(m.Host, strconv.Itoa(int(m.Port)))
		default:
			nch.Reject(ssh.UnknownChannelType, "not supported")
			continue
		}
		fc, err := net.Dial(network, target)
		if err != nil {
			nch.Reject(ssh.ConnectionFailed, err.Error())
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			fc.Close()
			continue
		}
		s.track(fc)
		go ssh.DiscardRequests(creqs)
		go func() { io.Copy(ch, fc); ch.Close() }()
		go func() { io.Copy(fc, ch); fc.Close() }()
	}
}

func (s *sshServer) loginNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.logins...)
}

// writeKey writes a new ed25519 private key in OpenSSH format.
func writeKey(t *testing.T, path string) ssh.PublicKey {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func writeKnownHosts(t *testing.T, path, addr string, keys ...ssh.PublicKey) {
	var text string
	for _, k := range keys {
		text += knownhosts.Line([]string{knownhosts.Normalize(addr)}, k) + "\n"
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// envMap is a Getenv for tests: nothing from the real environment (no
// SSH_AUTH_SOCK, no real ~/.ssh) leaks in.
func envMap(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}
