package spec

import (
	"fmt"
	"regexp"
)

// Host container storage in the guest (--bind-storage-ro, to-disk).
const (
	// HostStorageDir is where the runner sees the host's container storage
	// (read-only).
	HostStorageDir = "/bcvk/host-storage"
	// HostStorageTag is its virtiofs tag.
	HostStorageTag = "hoststorage"
	// GuestHostStorage is where the guest sees it; the guest's podman has
	// it as an additional image store.
	GuestHostStorage = "/run/bcvk/host-storage"
)

// HostStorage says how the host stores images, so that the guest's
// podman reads the store with the same driver.
type HostStorage struct {
	Driver string `json:"driver"`
}

// storageDrivers are the drivers whose stores another containers/storage
// can read as an additional image store.
var storageDrivers = map[string]bool{"overlay": true, "vfs": true}

func (h *HostStorage) validate() error {
	if !storageDrivers[h.Driver] {
		return fmt.Errorf("the host's container storage uses the %q driver; the guest can read only overlay or vfs stores", h.Driver)
	}
	return nil
}

// DefaultSSHUser is who bcvk logs in as unless --ssh-user says otherwise.
const DefaultSSHUser = "root"

// userRE is what useradd and systemd-sysusers accept, kept strict: the
// name becomes a path, a tmpfiles line and an SSH destination.
var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}$`)

// ValidateUser checks a --ssh-user name.
func ValidateUser(u string) error {
	if !userRE.MatchString(u) {
		return fmt.Errorf("user name %q: use up to 31 lower-case letters, digits, '_' or '-', starting with a letter or '_'", u)
	}
	return nil
}

// LoginUser is the user SSH logs in as.
func (s *Spec) LoginUser() string {
	if s.SSHUser == "" {
		return DefaultSSHUser
	}
	return s.SSHUser
}
