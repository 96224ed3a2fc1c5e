package spec

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Publish is one guest port reachable on the host (-p/--publish): podman
// publishes ContainerPort(i) on HostIP:HostPort, and QEMU's user network
// forwards that container port to the guest's GuestPort.
type Publish struct {
	HostIP    string `json:"hostIP"`
	HostPort  int    `json:"hostPort"`
	GuestPort int    `json:"guestPort"`
	Protocol  string `json:"protocol"` // tcp
}

// DefaultPublishIP is where a published port listens when no IP is given:
// the VM is reachable from this host only, unless the user asks for more.
const DefaultPublishIP = "127.0.0.1"

// publishPortBase is the first container port used for published ports;
// the container's network namespace is private, so any free range works.
const publishPortBase = 30000

// MaxPublish bounds the number of published ports.
const MaxPublish = 64

// PublishContainerPort is the container port for the i-th published port.
func PublishContainerPort(i int) int { return publishPortBase + i }

// String is the flag's form: IP:HOST:GUEST/PROTO (IPv6 in brackets).
func (p Publish) String() string {
	ip := p.HostIP
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	return fmt.Sprintf("%s:%d:%d/%s", ip, p.HostPort, p.GuestPort, p.Protocol)
}

// ParsePublish reads [IP:]HOSTPORT:GUESTPORT[/tcp]; an IPv6 address goes
// in brackets, as with podman.
func ParsePublish(s string) (Publish, error) {
	p := Publish{HostIP: DefaultPublishIP, Protocol: "tcp"}
	bad := func(why string) (Publish, error) {
		return Publish{}, fmt.Errorf("%q: %s; give [IP:]HOSTPORT:GUESTPORT[/tcp], e.g. 8080:80 or 0.0.0.0:8443:443", s, why)
	}
	rest := s
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		p.Protocol = rest[i+1:]
		rest = rest[:i]
		if p.Protocol != "tcp" {
			return bad("only tcp ports can be published (QEMU's user network forwards udp without replies to the right peer)")
		}
	}
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return bad("an IPv6 address needs a closing bracket and a colon")
		}
		p.HostIP = rest[1:end]
		rest = rest[end+2:]
		if ip := net.ParseIP(p.HostIP); ip == nil || ip.To4() != nil {
			return bad("the address in brackets is not an IPv6 address")
		}
	}
	parts := strings.Split(rest, ":")
	switch len(parts) {
	case 2:
	case 3:
		if strings.HasPrefix(s, "[") {
			return bad("too many colons")
		}
		p.HostIP = parts[0]
		parts = parts[1:]
		if ip := net.ParseIP(p.HostIP); ip == nil || ip.To4() == nil {
			return bad("the host address is not an IPv4 address (IPv6 goes in brackets)")
		}
	default:
		return bad("a host and a guest port are needed")
	}
	var err error
	if p.HostPort, err = parsePort(parts[0]); err != nil {
		return bad("host port: " + err.Error())
	}
	if p.GuestPort, err = parsePort(parts[1]); err != nil {
		return bad("guest port: " + err.Error())
	}
	return p, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || s != strconv.Itoa(n) {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return n, nil
}

func validatePublish(ps []Publish) error {
	if len(ps) > MaxPublish {
		return fmt.Errorf("%d published ports: at most %d", len(ps), MaxPublish)
	}
	var errs []error
	seen := map[string]bool{}
	for _, p := range ps {
		if ip := net.ParseIP(p.HostIP); ip == nil {
			errs = append(errs, fmt.Errorf("published port %d: host address %q is not an IP address", p.HostPort, p.HostIP))
		}
		if p.HostPort < 1 || p.HostPort > 65535 || p.GuestPort < 1 || p.GuestPort > 65535 {
			errs = append(errs, fmt.Errorf("published port %d:%d: ports are 1-65535", p.HostPort, p.GuestPort))
		}
		if p.Protocol != "tcp" {
			errs = append(errs, fmt.Errorf("published port %d: protocol %q: only tcp", p.HostPort, p.Protocol))
		}
		k := net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort))
		if seen[k] {
			errs = append(errs, fmt.Errorf("host port %s is published twice", k))
		}
		seen[k] = true
	}
	return errors.Join(errs...)
}

// FormatPublishLabel is the bcvk.publish label's value: the ports in flag
// form, comma separated.
func FormatPublishLabel(ps []Publish) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// ParsePublishLabel reads the label back; a label is data anyone with
// podman could have set, so entries that do not parse are dropped.
func ParsePublishLabel(v string) []Publish {
	var ps []Publish
	for _, f := range strings.Split(v, ",") {
		if f == "" {
			continue
		}
		if p, err := ParsePublish(f); err == nil && len(ps) < MaxPublish {
			ps = append(ps, p)
		}
	}
	return ps
}
