package supervisor

import (
	"context"
	"errors"
	"fmt"
	"github.com/bcvk/bcvk/pkg/credential"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/machine"
	"github.com/bcvk/bcvk/pkg/inner/qemu"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/sshclient"
	"github.com/bcvk/bcvk/pkg/sshkey"
	"github.com/sirupsen/logrus"
)

// Named timeouts of the warm start.
const (
	warmSaveTimeout    = 2 * time.Minute
	warmRestoreTimeout = 2 * time.Minute
	warmLoginTimeout   = time.Minute
	warmLoginRetry     = 500 * time.Millisecond
)

// guestSSH runs a command in the guest as root with the key at keyPath.
func (s *supervisor) guestSSH(ctx context.Context, keyPath string, cmd ...string) error {
	args := sshclient.Args(keyPath, sshclient.ProxyCommand, nil, "root", cmd)
	return s.table.Run(ctx, io.Discard, append([]string{s.o.SSH}, args...)...)
}

// saveWarm saves the running VM into the warm directory, the state last
// but for meta.json, whose presence marks the directory complete. A failure
// is a warning: this VM goes on, the next run boots afresh.
func (s *supervisor) saveWarm(ctx context.Context, m *machine.Machine) {
	start := time.Now()
	err := s.doSaveWarm(ctx, m)
	if err != nil {
		msg := fmt.Sprintf("could not save the VM for warm starts: %v", err)
		logrus.Warn(msg)
		s.ev.Emit(events.PhaseWarning, msg)
		return
	}
	logrus.Infof("saved the VM for warm starts in %.1fs", time.Since(start).Seconds())
}

func (s *supervisor) doSaveWarm(ctx context.Context, m *machine.Machine) error {
	ctx, cancel := context.WithTimeout(ctx, warmSaveTimeout)
	defer cancel()
	key := filepath.Join(s.o.StateDir, spec.SSHKeyFile)
	// The saved guest must accept no key that a user ever had: every clone
	// would open to it until its own key is swapped in. It gets a key made
	// for the save, kept only in the warm directory; this VM gets its own
	// key back once the state is written.
	restoreKey, err := sshkey.Generate("bcvk-warm-restore")
	if err != nil {
		return err
	}
	savedKey := filepath.Join(s.o.WarmDir, spec.WarmKeyFile)
	_ = os.Remove(savedKey)
	_ = os.Remove(savedKey + ".pub")
	if err := restoreKey.Write(savedKey); err != nil {
		return err
	}
	// Keep root's user manager running in the snapshot, so that the first
	// login after a restore does not wait for it (seconds under TCG). With
	// user@0 masked (--fast) this does nothing.
	if err := s.guestSSH(ctx, key, "sh", "-c", "loginctl enable-linger root; systemctl start user@0.service 2>/dev/null; "+
		s.authorizeOnly(restoreKey.Public)); err != nil {
		return fmt.Errorf("giving the guest the restore key: %w", err)
	}
	saveErr := qemu.SaveState(ctx, m.QMP(), filepath.Join(s.o.WarmDir, spec.WarmStateFile))
	if err := s.guestSSH(ctx, savedKey, "sh", "-c", s.authorizeOnly(s.sp.SSHAuthorizedKey)); err != nil {
		return errors.Join(saveErr, fmt.Errorf("giving the guest its key back after the save: %w", err))
	}
	if saveErr != nil {
		return saveErr
	}
	if err := copyFile(s.cfg.Initramfs, filepath.Join(s.o.WarmDir, spec.WarmInitramfsFile), 0o644); err != nil {
		return err
	}
	return spec.WarmMeta{
		Accel: s.cfg.Accel, SMBIOSCredentials: s.cfg.SMBIOSCredentials, KernelVersion: s.kernel.Version,
		RootTransport: s.root, SSHTransport: s.tp.transport, HotplugPorts: s.cfg.HotplugPorts,
	}.Write(s.o.WarmDir)
}

// authorizeOnly is a guest shell command that makes pubkey the only key
// bcvk authorizes for root (and the SSH user), in the files sshd reads
// through bcvk's drop-in (see credential.AuthorizedKeysDir).
func (s *supervisor) authorizeOnly(pubkey string) string {
	users := []string{spec.DefaultSSHUser}
	if u := s.sp.LoginUser(); u != spec.DefaultSSHUser {
		users = append(users, u)
	}
	cmd := "umask 022 && mkdir -p " + credential.AuthorizedKeysDir
	for _, u := range users {
		f := credential.AuthorizedKeysFile(u)
		cmd += fmt.Sprintf(" && printf '%%s\\n' %s > %s.new && mv -f %s.new %s",
			sshclient.Quote(strings.TrimSpace(pubkey)), f, f, f)
	}
	return cmd
}

// restoreWarm loads the saved state into the waiting QEMU, then swaps the
// saved key for this VM's own and sets the guest clock (it stood still
// while the state was on disk), and reports SSH ready.
func (s *supervisor) restoreWarm(ctx context.Context, m *machine.Machine) error {
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, warmRestoreTimeout)
	defer cancel()
	if err := qemu.RestoreState(rctx, m.QMP(), filepath.Join(s.o.WarmDir, spec.WarmStateFile)); err != nil {
		return err
	}
	s.ev.Emit(events.PhaseBooting, fmt.Sprintf("restored the saved VM in %.1fs", time.Since(start).Seconds()))
	// The devices go in at once: the guest finds them while the login
	// below starts, and the same login mounts them.
	if err := s.plugShares(rctx, m); err != nil {
		return err
	}
	savedKey := filepath.Join(s.o.WarmDir, spec.WarmKeyFile)
	lctx, lcancel := context.WithTimeout(ctx, warmLoginTimeout)
	defer lcancel()
	for {
		// The clock as of this attempt: a login retried under load would
		// otherwise set a time that is already old.
		script := fmt.Sprintf("%s && date -s @%d >/dev/null", s.authorizeOnly(s.sp.SSHAuthorizedKey), time.Now().Unix())
		if len(s.warmBinds) > 0 {
			script = "{ " + script + "; } || exit 1\n" + mountSharesScript
		}
		err := s.guestSSH(lctx, savedKey, append([]string{"sh", "-c", script, "sh"}, mountSharesArgs(s.warmBinds, mountTries)...)...)
		if err == nil {
			break
		}
		if mountFailed(err) {
			return fmt.Errorf("mounting the shares in the restored guest: %w", err)
		}
		select {
		case <-lctx.Done():
			return fmt.Errorf("the restored guest did not take its new SSH key: %w", err)
		case <-m.Done():
			return fmt.Errorf("QEMU %s", m.QEMU().ExitDescription())
		case <-time.After(warmLoginRetry):
		}
	}
	if len(s.warmBinds) > 0 {
		s.ev.Emit(events.PhaseBooting, fmt.Sprintf("hot-plugged and mounted %d shares", len(s.warmBinds)))
	}
	s.sshReady.Store(true)
	s.ev.Emit(events.PhaseSSH, "SSH is ready (warm start)")
	logrus.Infof("warm start: SSH ready %.1fs after the restore began", time.Since(start).Seconds())
	return nil
}

func copyFile(from, to string, mode os.FileMode) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, mode)
}
