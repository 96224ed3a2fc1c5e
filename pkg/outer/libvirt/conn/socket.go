package conn

import (
	"errors"
	"path/filepath"
)

// Where libvirt's system daemons listen. libvirt-sock belongs to the
// monolithic libvirtd or, with modular daemons, to virtproxyd; a host running
// only virtqemud has virtqemud-sock alone.
const (
	SystemSocket        = "/var/run/libvirt/libvirt-sock"
	SystemVirtqemudSock = "/var/run/libvirt/virtqemud-sock"
	// DefaultRemoteSocket is the socket bcvk opens on a qemu+ssh host
	// unless socket= says otherwise.
	DefaultRemoteSocket = SystemSocket
)

// LocalSocket picks the unix socket of a local URI: socket= if given, else
// the first of libvirt-sock and virtqemud-sock that exists in the mode's
// directory, else libvirt-sock, so that the dial error names the usual path.
// For the session daemon the directory is $XDG_RUNTIME_DIR/libvirt, else
// $XDG_CACHE_HOME/libvirt or ~/.cache/libvirt, as libvirt's own client
// computes it (root from `su` or a CI job often has no XDG_RUNTIME_DIR).
func LocalSocket(u URI, getenv func(string) string, exists func(path string) bool) (string, error) {
	if u.Remote() {
		return "", errors.New("LocalSocket: " + u.String() + " is not a local URI")
	}
	if u.Socket != "" {
		return u.Socket, nil
	}
	var candidates []string
	switch u.Mode {
	case ModeSession:
		dir, err := sessionDir(getenv)
		if err != nil {
			return "", err
		}
		candidates = []string{filepath.Join(dir, "libvirt-sock"), filepath.Join(dir, "virtqemud-sock")}
	default:
		candidates = []string{SystemSocket, SystemVirtqemudSock}
	}
	for _, c := range candidates {
		if exists(c) {
			return c, nil
		}
	}
	return candidates[0], nil
}

func sessionDir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "libvirt"), nil
	}
	if d := getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "libvirt"), nil
	}
	home, err := homeDir(getenv)
	if err != nil {
		return "", errors.New("cannot find the session daemon's socket: neither XDG_RUNTIME_DIR nor HOME is set; pass socket=PATH")
	}
	return filepath.Join(home, ".cache", "libvirt"), nil
}

// homeDir is os.UserHomeDir on Linux ($HOME), through getenv so that tests
// can set it.
func homeDir(getenv func(string) string) (string, error) {
	if h := getenv("HOME"); h != "" {
		return h, nil
	}
	return "", errors.New("$HOME is not defined")
}
