package conn

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/digitalocean/go-libvirt"
)

// Wrap says which operation failed: "define domain NAME: " followed by
// libvirt's own message, which already names the object and the reason.
// errors.Is and errors.As still see the libvirt.Error (and IsNotFound and
// the like work on the result). Nil stays nil.
func Wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, libvirt.ErrInterrupted), isNotConnected(err):
		return fmt.Errorf("%s: the connection to libvirt was lost (%w)", op, err)
	case errors.Is(err, libvirt.ErrUnsupported):
		return fmt.Errorf("%s: the libvirt daemon does not know this call; it may be too old (%w)", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// go-libvirt answers a call on a closed socket with a bare EINVAL.
func isNotConnected(err error) bool {
	var le libvirt.Error
	return errors.Is(err, syscall.EINVAL) && !errors.As(err, &le)
}

// Code is libvirt's error number in err, if err carries one.
func Code(err error) (libvirt.ErrorNumber, bool) {
	var le libvirt.Error
	if errors.As(err, &le) {
		return libvirt.ErrorNumber(le.Code), true
	}
	return 0, false
}

func hasCode(err error, codes ...libvirt.ErrorNumber) bool {
	c, ok := Code(err)
	if !ok {
		return false
	}
	for _, want := range codes {
		if c == want {
			return true
		}
	}
	return false
}

// IsNotFound reports a missing domain, storage volume or storage pool, so that
// removal can be idempotent.
func IsNotFound(err error) bool {
	return hasCode(err, libvirt.ErrNoDomain, libvirt.ErrNoStorageVol, libvirt.ErrNoStoragePool)
}

// IsInvalidOperation reports a call that does not fit the object's state,
// such as destroying a domain that is not running.
func IsInvalidOperation(err error) bool {
	return hasCode(err, libvirt.ErrOperationInvalid)
}

// IsAlreadyExists reports a domain or volume name that is taken. Defining a
// domain whose name is taken by another UUID is ErrOperationFailed instead,
// which says too little to be matched here: look the name up first.
func IsAlreadyExists(err error) bool {
	return hasCode(err, libvirt.ErrDomExist, libvirt.ErrStorageVolExist)
}
