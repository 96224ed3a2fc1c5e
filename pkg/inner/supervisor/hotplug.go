package supervisor

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/machine"
	"github.com/bcvk/bcvk/pkg/inner/proc"
	"github.com/bcvk/bcvk/pkg/inner/qemu"
	"github.com/bcvk/bcvk/pkg/spec"
)

// A warm VM's shares (--bind, --ro-bind) are not in the saved machine, so
// that one saved VM serves any shares: once the VM runs (restored, or just
// saved), each share's virtiofsd starts as on a cold boot, its device is
// hot-plugged into one of the machine's empty PCIe root ports, and the guest
// mounts it, all before SSH is reported ready.

// attachTimeout bounds hot-plugging and mounting the shares of a saved VM.
const attachTimeout = time.Minute

// exitMountFailed is the exit status of mountSharesScript when a share
// could not be mounted (an SSH failure is 255).
const exitMountFailed = 3

// mountSharesScript mounts shares in the guest; its arguments are how often
// to try each mount, then for each share the virtiofs tag, the guest path
// and "ro" or "rw" (mountSharesArgs), so that paths stay data. The guest's
// own mkdir and mount resolve the path in the guest, following its links
// (/mnt -> var/mnt) as a cold boot does. The device appears a moment after
// it is plugged: a mount is retried every 0.1 s. One already mounted (a
// login that is retried) is left.
const mountSharesScript = `share() {
  mountpoint -q "$2" 2>/dev/null && return 0
  mkdir -p -- "$2" || return
  i=0
  until mount -t virtiofs -o "$3" -- "$1" "$2" 2>/dev/null; do
    i=$((i+1))
    if [ "$i" -ge "$tries" ]; then mount -t virtiofs -o "$3" -- "$1" "$2"; return; fi
    sleep 0.1
  done
}
tries=$1; shift
while [ "$#" -ge 3 ]; do share "$1" "$2" "$3" || exit 3; shift 3; done`

// mountTries bounds the wait for a plugged device: about 30 s.
const mountTries = 300

// mountSharesArgs are mountSharesScript's arguments for binds (the i-th
// has tag spec.BindTag(i)).
func mountSharesArgs(binds []spec.Bind, tries int) []string {
	a := []string{strconv.Itoa(tries)}
	for i, b := range binds {
		mode := "rw"
		if b.ReadOnly {
			mode = "ro"
		}
		a = append(a, spec.BindTag(i), b.GuestPath, mode)
	}
	return a
}

// plugShares publishes the warm VM's ports, starts the virtiofsd of each of
// its shares and hot-plugs its device; the guest still has to mount them.
func (s *supervisor) plugShares(ctx context.Context, m *machine.Machine) error {
	for i, p := range s.warmPublish {
		if err := qemu.AddForward(ctx, m.QMP(), qemu.Forward{ContainerPort: spec.PublishContainerPort(i), GuestPort: p.GuestPort}); err != nil {
			return err
		}
	}
	for i, b := range s.warmBinds {
		sh := bindShare(s.o, i)
		if err := m.AddHelper(ctx, s.table, bindHelper(s.o, i, b, sh.Socket), s.o.Stderr); err != nil {
			return fmt.Errorf("starting the share at %s: %w", b.GuestPath, err)
		}
		// Bounded like a helper's start: a virtiofsd that never listens
		// (it died after making its socket) is not waited for long.
		pctx, cancel := context.WithTimeout(ctx, machine.HelperStartTimeout)
		err := qemu.HotplugShare(pctx, m.QMP(), sh, qemu.HotplugPort(i))
		cancel()
		if err != nil {
			return fmt.Errorf("the share at %s: %w", b.GuestPath, err)
		}
	}
	return nil
}

// attachShares publishes the ports and plugs and mounts the shares of a VM
// that was just saved,
// logging in with this VM's own key.
func (s *supervisor) attachShares(ctx context.Context, m *machine.Machine) error {
	if len(s.warmBinds) == 0 && len(s.warmPublish) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, attachTimeout)
	defer cancel()
	if err := s.plugShares(ctx, m); err != nil {
		return err
	}
	if len(s.warmBinds) == 0 {
		return nil
	}
	key := filepath.Join(s.o.StateDir, spec.SSHKeyFile)
	if err := s.guestSSH(ctx, key, append([]string{"sh", "-c", mountSharesScript, "sh"}, mountSharesArgs(s.warmBinds, mountTries)...)...); err != nil {
		return fmt.Errorf("mounting the shares in the guest: %w", err)
	}
	s.ev.Emit(events.PhaseBooting, fmt.Sprintf("hot-plugged and mounted %d shares", len(s.warmBinds)))
	return nil
}

// mountFailed says a restore login ran but the shares' mounts failed:
// logging in again would not help.
func mountFailed(err error) bool {
	var ee *proc.ExitError
	return errors.As(err, &ee) && ee.Status.Exited() && ee.Status.ExitStatus() == exitMountFailed
}
