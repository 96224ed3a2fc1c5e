package supervisor

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/qemu"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/sshclient"
	"github.com/sirupsen/logrus"
)

// Named timeouts of the warm start.
const (
	warmSaveTimeout    = 2 * time.Minute
	warmRestoreTimeout = 2 * time.Minute
	warmLoginTimeout   = time.Minute
	warmLoginRetry     = 500 * time.Millisecond
	qmpStartTimeout    = 10 * time.Second
)

// guestSSH runs a command in the guest as root with the key at keyPath.
func (s *supervisor) guestSSH(ctx context.Context, keyPath string, cmd ...string) error {
	args := sshclient.Args(keyPath, spec.GuestSSHPort, []string{"-o", "ConnectTimeout=10"}, "root", cmd)
	return s.table.Run(ctx, io.Discard, append([]string{"ssh"}, args...)...)
}

// saveWarm saves the running VM into the warm directory, the state last
// but for meta.json, whose presence marks the directory complete. A failure
// is a warning: this VM goes on, the next run boots afresh.
func (s *supervisor) saveWarm(ctx context.Context, v *vm) {
	start := time.Now()
	err := s.doSaveWarm(ctx, v)
	if err != nil {
		msg := fmt.Sprintf("could not save the VM for warm starts: %v", err)
		logrus.Warn(msg)
		s.ev.Emit(events.PhaseWarning, msg)
		return
	}
	logrus.Infof("saved the VM for warm starts in %.1fs", time.Since(start).Seconds())
}

func (s *supervisor) doSaveWarm(ctx context.Context, v *vm) error {
	ctx, cancel := context.WithTimeout(ctx, warmSaveTimeout)
	defer cancel()
	key := filepath.Join(s.o.StateDir, spec.SSHKeyFile)
	// Keep root's user manager running in the snapshot, so that the first
	// login after a restore does not wait for it (seconds under TCG). With
	// user@0 masked (--fast) this does nothing.
	_ = s.guestSSH(ctx, key, "sh", "-c", "loginctl enable-linger root; systemctl start user@0.service 2>/dev/null; true")
	if err := qemu.SaveState(ctx, v.qmpSocket, filepath.Join(s.o.WarmDir, spec.WarmStateFile)); err != nil {
		return err
	}
	if err := copyFile(s.finalCfg.Initramfs, filepath.Join(s.o.WarmDir, spec.WarmInitramfsFile), 0o644); err != nil {
		return err
	}
	if err := copyFile(key, filepath.Join(s.o.WarmDir, spec.WarmKeyFile), 0o600); err != nil {
		return err
	}
	return spec.WarmMeta{
		Accel: s.finalCfg.Accel, SMBIOSCredentials: s.finalCfg.SMBIOSCredentials, KernelVersion: s.kernelVersion,
	}.Write(s.o.WarmDir)
}

// restoreWarm loads the saved state into the waiting QEMU, then swaps the
// saved key for this VM's own and sets the guest clock (it stood still
// while the state was on disk), and reports SSH ready.
func (s *supervisor) restoreWarm(ctx context.Context, v *vm) error {
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, warmRestoreTimeout)
	defer cancel()
	if err := waitSocket(v.qmpSocket, v.qemu, qmpStartTimeout); err != nil {
		return err
	}
	if err := qemu.RestoreState(rctx, v.qmpSocket, filepath.Join(s.o.WarmDir, spec.WarmStateFile)); err != nil {
		return err
	}
	s.ev.Emit(events.PhaseBooting, fmt.Sprintf("restored the saved VM in %.1fs", time.Since(start).Seconds()))
	savedKey := filepath.Join(s.o.WarmDir, spec.WarmKeyFile)
	script := fmt.Sprintf("umask 077 && printf '%%s\\n' %s > /root/.ssh/authorized_keys && date -s @%d >/dev/null",
		sshclient.Quote(strings.TrimSpace(s.sp.SSHAuthorizedKey)), time.Now().Unix())
	lctx, lcancel := context.WithTimeout(ctx, warmLoginTimeout)
	defer lcancel()
	for {
		err := s.guestSSH(lctx, savedKey, "sh", "-c", script)
		if err == nil {
			break
		}
		select {
		case <-lctx.Done():
			return fmt.Errorf("the restored guest did not take its new SSH key: %w", err)
		case <-v.qemu.Done():
			return fmt.Errorf("QEMU %s", v.qemu.ExitDescription())
		case <-time.After(warmLoginRetry):
		}
	}
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
