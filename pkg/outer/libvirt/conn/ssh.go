package conn

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHDialer is go-libvirt's socket.Dialer over an SSH client that bcvk owns
// (not go-libvirt's own SSH dialer, which hides its client): each Dial opens a
// direct-streamlocal channel to the daemon's unix socket on the far host, so
// nothing but sshd is needed there, and the same client later reaches the
// VM's forwarded port on that host's loopback.
type SSHDialer struct {
	Client *ssh.Client
	Socket string // the daemon's socket on the remote host
}

// Dial opens the remote socket. A refusal names the socket; Open adds what to
// check.
func (d *SSHDialer) Dial() (net.Conn, error) {
	c, err := d.Client.Dial("unix", d.Socket)
	if err != nil {
		return nil, fmt.Errorf("opening %s through ssh: %w", d.Socket, err)
	}
	return c, nil
}

// defaultKeys are tried in this order when keyfile= is not given, as
// OpenSSH does (without its DSA key, which x/crypto/ssh cannot use anyway).
func defaultKeys() []string { return []string{"id_ed25519", "id_ecdsa", "id_rsa"} }

// sshAuth is the user and the keys bcvk offers, and what it tried, for the
// error when the server takes none of them.
type sshAuth struct {
	user    string
	methods []ssh.AuthMethod
	tried   []string
	closers []func() error
}

func (a *sshAuth) close() {
	for _, c := range a.closers {
		_ = c()
	}
}

func newSSHAuth(u URI, getenv func(string) string) (*sshAuth, error) {
	a := &sshAuth{user: u.User}
	if a.user == "" {
		// os/user reads /etc/passwd without cgo; $USER is the fallback for
		// users that only exist in NSS.
		if cu, err := user.Current(); err == nil {
			a.user = cu.Username
		} else if a.user = getenv("USER"); a.user == "" {
			return nil, errors.New("no SSH user: put one in the URI (qemu+ssh://USER@HOST/system)")
		}
	}

	var signers []ssh.Signer
	if u.KeyFile != "" {
		s, err := loadKey(u.KeyFile)
		if err != nil {
			return nil, err
		}
		signers = append(signers, s)
		a.tried = append(a.tried, u.KeyFile)
	} else if home, err := homeDir(getenv); err == nil {
		for _, name := range defaultKeys() {
			p := filepath.Join(home, ".ssh", name)
			s, err := loadKey(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				// A passphrase-protected key may still be in the agent.
				a.tried = append(a.tried, fmt.Sprintf("%s (skipped: %v)", p, err))
				continue
			}
			signers = append(signers, s)
			a.tried = append(a.tried, p)
		}
	}
	if len(signers) > 0 {
		a.methods = append(a.methods, ssh.PublicKeys(signers...))
	}

	if sock := getenv("SSH_AUTH_SOCK"); sock != "" {
		ac, err := net.Dial("unix", sock)
		if err != nil {
			a.tried = append(a.tried, fmt.Sprintf("ssh-agent at %s (unreachable: %v)", sock, err))
		} else {
			a.closers = append(a.closers, ac.Close)
			a.methods = append(a.methods, ssh.PublicKeysCallback(agent.NewClient(ac).Signers))
			a.tried = append(a.tried, "ssh-agent at "+sock)
		}
	}
	if len(a.methods) == 0 {
		return nil, fmt.Errorf("no SSH key to log in with (tried %s; SSH_AUTH_SOCK is not set): pass keyfile=PATH in the URI",
			orNone(a.tried, "~/.ssh/"+strings.Join(defaultKeys(), ", ~/.ssh/")))
	}
	return a, nil
}

func loadKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("SSH key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("SSH key %s has a passphrase, which bcvk cannot ask for: add it to ssh-agent (ssh-add %s)", path, path)
	}
	if err != nil {
		return nil, fmt.Errorf("SSH key %s: %w", path, err)
	}
	return s, nil
}

// HostKeyError is a refused SSH host key: unknown, changed or revoked. Its
// message names the known_hosts file and the command that fixes it.
type HostKeyError struct {
	Addr       string // HOST:PORT as dialed
	KnownHosts string
	Err        error // a *knownhosts.KeyError or *knownhosts.RevokedError
}

func (e *HostKeyError) Unwrap() error { return e.Err }

func (e *HostKeyError) Error() string {
	host, port, _ := net.SplitHostPort(e.Addr)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(e.Err, &re):
		return fmt.Sprintf("the SSH host key of %s is marked revoked in %s line %d", e.Addr, re.Revoked.Filename, re.Revoked.Line)
	case errors.As(e.Err, &ke) && len(ke.Want) > 0:
		w := ke.Want[0]
		return fmt.Sprintf("the SSH host key of %s does not match %s line %d (possible man-in-the-middle); "+
			"if the host was reinstalled, remove the old key with: ssh-keygen -R '%s' -f %s",
			e.Addr, w.Filename, w.Line, knownhosts.Normalize(e.Addr), e.KnownHosts)
	default:
		return fmt.Sprintf("the SSH host key of %s is not in %s: check it and add it with: ssh-keyscan -p %s %s >> %s "+
			"(or, insecure, add no_verify=1 to the URI)", e.Addr, e.KnownHosts, port, host, e.KnownHosts)
	}
}

// hostKeyCheck returns the host key callback for u and the host key
// algorithms to ask for. Asking only for the algorithms known_hosts has keys
// of matters: otherwise the server may present, say, its ed25519 key while
// known_hosts holds its ecdsa one, and a known host is refused as unknown.
func hostKeyCheck(u URI, getenv func(string) string, remote net.Addr) (ssh.HostKeyCallback, []string, error) {
	if u.NoVerify {
		return ssh.InsecureIgnoreHostKey(), nil, nil
	}
	file := u.KnownHosts
	if file == "" {
		home, err := homeDir(getenv)
		if err != nil {
			return nil, nil, fmt.Errorf("no known_hosts file to check the SSH host key: %v; pass known_hosts=PATH", err)
		}
		file = filepath.Join(home, ".ssh", "known_hosts")
	}
	addr := u.Addr()
	refuse := func(err error) error { return &HostKeyError{Addr: addr, KnownHosts: file, Err: err} }

	check, err := knownhosts.New(file)
	if errors.Is(err, fs.ErrNotExist) {
		// Same answer as an entry that is not there; ssh-keyscan >> FILE creates it.
		return func(string, net.Addr, ssh.PublicKey) error { return refuse(&knownhosts.KeyError{}) }, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading SSH known hosts %s: %w", file, err)
	}
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		if errors.As(err, &ke) || errors.As(err, &re) {
			return refuse(err)
		}
		return err
	}
	return cb, knownAlgorithms(check, addr, remote), nil
}

// knownAlgorithms lists the host key algorithms of the keys known_hosts has
// for addr, by checking a throwaway key: knownhosts reports the keys it
// wanted. Nil (no restriction) when there are none.
func knownAlgorithms(check ssh.HostKeyCallback, addr string, remote net.Addr) []string {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(check(addr, remote, probe), &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

func algorithmsFor(keyType string) []string {
	switch keyType {
	case ssh.KeyAlgoRSA:
		// An RSA key signs with any of these; ssh-rsa (SHA-1) last.
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	case ssh.CertAlgoRSAv01:
		return []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01}
	default:
		return []string{keyType}
	}
}

// sshHint explains the SSH failures users meet; others pass through.
func sshHint(err error, u URI, auth *sshAuth) error {
	var hk *HostKeyError
	if errors.As(err, &hk) {
		// Drop x/crypto's "ssh: handshake failed:" prefix: the host key
		// message says it all.
		return hk
	}
	// x/crypto/ssh has no error type for this; its message is stable.
	if strings.Contains(err.Error(), "unable to authenticate") {
		return fmt.Errorf("%w: %s@%s accepted none of bcvk's keys (%s): add one to ~%s/.ssh/authorized_keys there, or pass keyfile=PATH",
			err, auth.user, u.Hostname, orNone(auth.tried, "none"), auth.user)
	}
	return err
}

func orNone(list []string, none string) string {
	if len(list) == 0 {
		return none
	}
	return strings.Join(list, ", ")
}
