// Package conn connects bcvk to a libvirt daemon through go-libvirt (pure Go,
// no cgo): it parses the libvirt URIs bcvk accepts, dials the daemon's socket
// locally, over TCP or over SSH, and keeps the SSH client so that the VM's
// forwarded SSH port, which is on the libvirt host's loopback, can be reached
// through the same connection (Conn.DialHost).
package conn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/digitalocean/go-libvirt"
)

// Transport is how the libvirt RPC stream reaches the daemon.
type Transport string

const (
	TransportUnix Transport = "unix" // a local unix socket
	TransportTCP  Transport = "tcp"  // plain TCP, no auth: loopback or CI only
	TransportSSH  Transport = "ssh"  // the remote unix socket over an SSH channel
)

// Mode is the daemon bcvk asks for: the system one (root, shared) or the
// calling user's session one.
type Mode string

const (
	ModeSystem  Mode = "system"
	ModeSession Mode = "session"
)

// Default ports, as libvirt's own client uses them.
const (
	DefaultTCPPort = 16509
	DefaultSSHPort = 22
)

// EnvDefaultURI is the variable libvirt's own tools read, honoured the same way.
const EnvDefaultURI = "LIBVIRT_DEFAULT_URI"

// SystemURI is bcvk's default, whatever the user is: the VMs bcvk makes live in
// the system daemon, as with virt-install run as root.
const SystemURI = "qemu:///system"

const accepted = "qemu:///system, qemu:///session, qemu+unix:///system, " +
	"qemu+tcp://HOST[:PORT]/system, qemu+ssh://[USER@]HOST[:PORT]/system"

// URI is a parsed libvirt connection URI of the forms bcvk supports.
// The zero value is not valid; use ParseURI or DefaultURI.
type URI struct {
	// Transport is TransportUnix for qemu:/// and qemu+unix:///.
	Transport Transport
	// ExplicitUnix records "qemu+unix://" (rather than "qemu://") so that
	// String gives back what the user wrote.
	ExplicitUnix bool
	User         string // ssh only; empty: the current user
	Hostname     string // tcp and ssh; an IPv6 address without brackets
	Port         int    // tcp and ssh; 0: the transport's default port
	Mode         Mode

	// Socket is the daemon's unix socket: local for unix, on the remote host
	// for ssh. Empty: the default (see LocalSocket, DefaultRemoteSocket).
	Socket string
	// KeyFile and KnownHosts are ssh only. Empty: ~/.ssh defaults.
	KeyFile    string
	KnownHosts string
	// NoVerify skips the SSH host key check (no_verify=1).
	NoVerify bool
}

// ParseURI parses and checks s. It refuses, before anything is dialed, what
// bcvk cannot do, and says what it accepts instead.
func ParseURI(s string) (URI, error) {
	bad := func(format string, args ...any) (URI, error) {
		return URI{}, fmt.Errorf("libvirt URI %q: %s", s, fmt.Sprintf(format, args...))
	}
	if s == "" {
		return bad("empty; accepted: %s", accepted)
	}
	if i := strings.IndexFunc(s, isControl); i >= 0 {
		return bad("control character %q at byte %d", s[i], i)
	}
	pu, err := url.Parse(s)
	if err != nil {
		return bad("%v; accepted: %s", unwrapURLError(err), accepted)
	}
	if pu.Scheme == "" || pu.Opaque != "" {
		return bad("not a URI of the form DRIVER[+TRANSPORT]://[HOST]/PATH; accepted: %s", accepted)
	}
	driver, transport, hasTransport := strings.Cut(pu.Scheme, "+")
	if driver != "qemu" {
		return bad("driver %q is not supported by bcvk, only qemu; accepted: %s", driver, accepted)
	}
	var u URI
	switch {
	case !hasTransport && pu.Host != "":
		// libvirt reads qemu://HOST/ as TLS.
		return bad("qemu://HOST/ means TLS, which is not supported by bcvk; use qemu+ssh or qemu+tcp")
	case !hasTransport:
		u.Transport = TransportUnix
	case transport == "unix":
		u.Transport, u.ExplicitUnix = TransportUnix, true
	case transport == "tcp":
		u.Transport = TransportTCP
	case transport == "ssh":
		u.Transport = TransportSSH
	default:
		// tls, libssh, libssh2, ext, ...
		return bad("transport %q is not supported by bcvk; use qemu+ssh or qemu+tcp (or qemu:/// for the local daemon)", transport)
	}
	if pu.Fragment != "" || strings.HasSuffix(s, "#") {
		return bad("a fragment (#...) is not allowed")
	}

	switch pu.Path {
	case "/system":
		u.Mode = ModeSystem
	case "/session":
		u.Mode = ModeSession
	default:
		return bad("path %q: only /system and /session are accepted", pu.Path)
	}

	if u.Transport == TransportUnix {
		if pu.Host != "" {
			return bad("a local (unix) URI has no host; for a remote host use qemu+ssh://[USER@]HOST/system")
		}
	} else {
		if u.Mode == ModeSession {
			return bad("/session is only for the local daemon (qemu:///session); a remote host needs /system")
		}
		u.Hostname = pu.Hostname()
		if u.Hostname == "" {
			return bad("qemu+%s needs a host, as in qemu+%s://HOST/system", u.Transport, u.Transport)
		}
		if strings.IndexFunc(u.Hostname, isControl) >= 0 {
			return bad("host has a control character")
		}
		if strings.HasPrefix(u.Hostname, "-") {
			return bad("host %q starts with '-'", u.Hostname)
		}
		if i := strings.IndexFunc(u.Hostname, notHostChar); i >= 0 {
			// IPv6 zones and non-ASCII names included: what ssh and DNS
			// take is letters, digits, '.', '-', '_' and, in [...], ':'.
			return bad("host %q: character %q is not accepted", u.Hostname, u.Hostname[i:i+1])
		}
		if strings.Contains(u.Hostname, ":") {
			if ip, err := netip.ParseAddr(u.Hostname); err != nil || !ip.Is6() || !strings.HasPrefix(pu.Host, "[") {
				return bad("host %q: an IPv6 address goes in brackets, as in [::1]:PORT", u.Hostname)
			}
		}
		if p := pu.Port(); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return bad("port %q is not a number from 1 to 65535", p)
			}
			u.Port = n
		} else if strings.HasSuffix(pu.Host, ":") {
			return bad("empty port after ':'")
		}
	}
	if pu.User != nil {
		if u.Transport != TransportSSH {
			return bad("a user name is only used with qemu+ssh")
		}
		if _, hasPassword := pu.User.Password(); hasPassword {
			return bad("passwords in the URI are not supported; bcvk uses SSH keys (keyfile= or the agent)")
		}
		u.User = pu.User.Username()
		if u.User == "" {
			return bad("empty user name before '@'")
		}
		if strings.IndexFunc(u.User, isControl) >= 0 {
			return bad("user name has a control character")
		}
	}

	q, err := url.ParseQuery(pu.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	for key, vals := range q {
		if len(vals) != 1 {
			return bad("parameter %s= is given %d times", key, len(vals))
		}
		v := vals[0]
		if i := strings.IndexFunc(v, isControl); i >= 0 {
			return bad("parameter %s= has a control character", key)
		}
		switch key {
		case "socket":
			if u.Transport == TransportTCP {
				return bad("socket= is for unix and ssh URIs, not qemu+tcp")
			}
			if !strings.HasPrefix(v, "/") {
				return bad("socket=%s is not an absolute path", v)
			}
			u.Socket = v
		case "keyfile", "known_hosts":
			if u.Transport != TransportSSH {
				return bad("%s= is only for qemu+ssh", key)
			}
			if v == "" {
				return bad("%s= is empty", key)
			}
			if key == "keyfile" {
				u.KeyFile = v
			} else {
				u.KnownHosts = v
			}
		case "no_verify":
			if u.Transport != TransportSSH {
				return bad("no_verify= is only for qemu+ssh (plain TCP has nothing to verify)")
			}
			switch v {
			case "1":
				u.NoVerify = true
			case "0":
			default:
				return bad("no_verify=%s: use no_verify=1 or no_verify=0", v)
			}
		case "no_tty":
			// Common in qemu+ssh URIs written for virsh; bcvk never prompts,
			// so it has no effect and is not kept.
		default:
			return bad("parameter %s= is not supported by bcvk; accepted: socket=, keyfile=, known_hosts=, no_verify=", key)
		}
	}
	return u, nil
}

// DefaultURI picks the URI as libvirt's tools do: the --connect flag, else
// $LIBVIRT_DEFAULT_URI, else qemu:///system. The error names where the bad
// value came from.
func DefaultURI(flag string, getenv func(string) string) (URI, error) {
	if flag != "" {
		u, err := ParseURI(flag)
		if err != nil {
			return URI{}, fmt.Errorf("--connect: %w", err)
		}
		return u, nil
	}
	if env := getenv(EnvDefaultURI); env != "" {
		u, err := ParseURI(env)
		if err != nil {
			return URI{}, fmt.Errorf("%s: %w", EnvDefaultURI, err)
		}
		return u, nil
	}
	return ParseURI(SystemURI)
}

// String gives the URI back in canonical form; ParseURI(u.String()) == u.
func (u URI) String() string {
	var b strings.Builder
	b.WriteString("qemu")
	if u.Transport != TransportUnix || u.ExplicitUnix {
		b.WriteString("+" + string(u.Transport))
	}
	b.WriteString("://")
	if u.User != "" {
		b.WriteString(url.User(u.User).String() + "@")
	}
	if u.Hostname != "" {
		h := u.Hostname
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		b.WriteString(h)
		if u.Port != 0 {
			b.WriteString(":" + strconv.Itoa(u.Port))
		}
	}
	b.WriteString("/" + string(u.Mode))
	sep := "?"
	param := func(k, v string) {
		b.WriteString(sep + k + "=" + queryEscape(v))
		sep = "&"
	}
	if u.KeyFile != "" {
		param("keyfile", u.KeyFile)
	}
	if u.KnownHosts != "" {
		param("known_hosts", u.KnownHosts)
	}
	if u.NoVerify {
		param("no_verify", "1")
	}
	if u.Socket != "" {
		param("socket", u.Socket)
	}
	return b.String()
}

// Remote reports whether the daemon is reached over the network (tcp or ssh).
func (u URI) Remote() bool { return u.Transport == TransportTCP || u.Transport == TransportSSH }

// Host is the remote host name or address, "" for a local URI.
func (u URI) Host() string { return u.Hostname }

// Addr is "HOST:PORT" with the transport's default port, "" for a local URI.
func (u URI) Addr() string {
	if !u.Remote() {
		return ""
	}
	return net.JoinHostPort(u.Hostname, strconv.Itoa(u.port()))
}

func (u URI) port() int {
	switch {
	case u.Port != 0:
		return u.Port
	case u.Transport == TransportSSH:
		return DefaultSSHPort
	default:
		return DefaultTCPPort
	}
}

// DriverURI is what bcvk asks the far daemon to open once the stream is up:
// the URI without its transport, as libvirt's remote driver does.
func (u URI) DriverURI() libvirt.ConnectURI {
	if u.Mode == ModeSession {
		return libvirt.QEMUSession
	}
	return libvirt.QEMUSystem
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func notHostChar(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune(".-_:", r))
}

// queryEscape keeps '/', ':', '@' and ',' readable in paths (url.QueryEscape
// would write socket=%2Fvar%2Frun...), and escapes what would end the value.
func queryEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("-._~/:@,", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// unwrapURLError drops url.Error's repetition of the whole URI, which the
// caller already prints.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
