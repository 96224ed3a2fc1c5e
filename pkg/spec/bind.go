package spec

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// BindsDir holds the host directories shared into the guest, one
// subdirectory per share, inside the runner container.
const BindsDir = "/bcvk/binds"

// Bind is a host directory shared into the guest over virtiofs.
type Bind struct {
	// Host is the directory on the host (absolute); only the host side
	// uses it.
	Host string `json:"host,omitempty"`
	// GuestPath is where the guest sees it.
	GuestPath string `json:"guestPath"`
	ReadOnly  bool   `json:"readOnly"`
}

// Tag is the virtiofs tag of the i-th share.
func BindTag(i int) string { return fmt.Sprintf("bind%d", i) }

// BindSource is where the i-th share is mounted in the runner container.
func BindSource(i int) string { return fmt.Sprintf("%s/%d", BindsDir, i) }

// ParseBind reads "HOST[:GUESTPATH]". HOST is made absolute against cwd; a
// missing GUESTPATH is /mnt/BASENAME.
func ParseBind(s, cwd string, readOnly bool) (Bind, error) {
	host, guest, _ := strings.Cut(s, ":")
	if host == "" {
		return Bind{}, fmt.Errorf("bind %q: give HOST-DIRECTORY[:GUEST-PATH]", s)
	}
	if !filepath.IsAbs(host) {
		host = filepath.Join(cwd, host)
	}
	host = filepath.Clean(host)
	if strings.ContainsAny(host, ",\n") {
		return Bind{}, fmt.Errorf("bind %q: the host path cannot contain a comma (podman's --mount syntax)", s)
	}
	// The guest runs its own kernel as root of its file systems: a writable
	// host root would be the whole host to it. Also through a symlink.
	if !readOnly && (host == "/" || resolvesToRoot(host)) {
		return Bind{}, fmt.Errorf("bind %q: sharing the host's root directory read-write gives the guest the whole host; use --ro-bind, or share a directory below it", s)
	}
	if guest == "" {
		base := filepath.Base(host)
		if base == "/" || base == "." {
			return Bind{}, fmt.Errorf("bind %q: give a GUEST-PATH for the root directory", s)
		}
		guest = "/mnt/" + base
	}
	b := Bind{Host: host, GuestPath: guest, ReadOnly: readOnly}
	return b, b.validateGuestPath()
}

func (b Bind) validateGuestPath() error {
	g := b.GuestPath
	if !path.IsAbs(g) || path.Clean(g) != g || strings.ContainsAny(g, " \t\n,") {
		return fmt.Errorf("guest path %q must be a clean absolute path without spaces or commas", g)
	}
	reserved := fmt.Errorf("guest path %q is reserved: share below /mnt, /srv, /var, /home or /opt instead", g)
	switch g {
	case "/", "/usr", "/etc": // the system itself; below them is fine
		return reserved
	}
	// The kernel's and systemd's own mounts would hide or refuse a share.
	for _, tree := range []string{"/proc", "/sys", "/dev", "/run"} {
		if g == tree || strings.HasPrefix(g, tree+"/") {
			return reserved
		}
	}
	return nil
}

func validateBinds(bs []Bind) error {
	var errs []error
	seen := map[string]bool{}
	for _, b := range bs {
		if err := b.validateGuestPath(); err != nil {
			errs = append(errs, err)
		}
		if seen[b.GuestPath] {
			errs = append(errs, fmt.Errorf("two shares at guest path %q", b.GuestPath))
		}
		seen[b.GuestPath] = true
	}
	if len(bs) > 16 {
		errs = append(errs, errors.New("at most 16 shares"))
	}
	return errors.Join(errs...)
}

func resolvesToRoot(p string) bool {
	r, err := filepath.EvalSymlinks(p)
	return err == nil && r == "/"
}
