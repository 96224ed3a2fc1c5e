package supervisor

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/fdwatch"
	"github.com/bcvk/bcvk/pkg/inner/machine"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
)

// Named settings of the descriptor watch.
const (
	// fdWatchInterval is how often each virtiofsd's open descriptors are
	// counted (a directory read of /proc/PID/fd); a walk of a large image
	// takes minutes, so the warning comes well before the limit.
	fdWatchInterval = 2 * time.Second
	// reclaimEvery bounds how often the guest is asked to drop its caches.
	reclaimEvery = 30 * time.Second
	// reclaimTimeout bounds one such request.
	reclaimTimeout = 30 * time.Second
)

// dropCaches makes the guest's kernel forget the dentries and inodes that
// nothing uses: for each, it tells virtiofsd (FUSE FORGET), which closes
// the descriptor it held. Files in use stay; later lookups cost a round
// trip again.
const dropCaches = "sync; echo 2 > /proc/sys/vm/drop_caches"

// watchFDs watches m's virtiofsd processes until m's QEMU ends. When one
// passes WarnPercent of its limit, the guest is asked to give cached
// inodes back (once SSH works); a warning follows only if that did not
// bring it down, and a plain message when it ran out.
func (s *supervisor) watchFDs(ctx context.Context, m *machine.Machine, interval time.Duration, reclaim func(context.Context) error) {
	if interval <= 0 {
		interval = fdWatchInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var tr fdwatch.Tracker
	var lastReclaim time.Time
	for {
		select {
		case <-m.Done():
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range m.Helpers() {
			smp, err := fdwatch.Read("/proc", p.Pid)
			if err != nil {
				continue // it ended; the machine reports that
			}
			l, rose := tr.Update(p.Name, smp)
			if !rose {
				continue
			}
			if l == fdwatch.High && reclaim != nil && time.Since(lastReclaim) > reclaimEvery {
				lastReclaim = time.Now()
				rctx, cancel := context.WithTimeout(ctx, reclaimTimeout)
				err := reclaim(rctx)
				cancel()
				if after, rerr := fdwatch.Read("/proc", p.Pid); err == nil && rerr == nil {
					msg := fmt.Sprintf("%s held %d of %d file descriptors: bcvk asked the guest to drop its cached files, and it now holds %d",
						shareName(p.Name), smp.Open, smp.Limit, after.Open)
					logrus.Info(msg)
					s.ev.Emit(events.PhaseInfo, msg)
					if l2, _ := tr.Update(p.Name, after); l2 < fdwatch.High {
						continue
					}
					smp = after
				}
			}
			msg := fdwatch.Message(shareName(p.Name), smp, l)
			logrus.Warn(msg)
			s.ev.Warn(events.CodeFDLimit, msg)
		}
	}
}

// reclaimFunc asks the guest to drop its caches over SSH, once SSH is
// ready; nil when bcvk has no login into the guest.
func (s *supervisor) reclaimFunc() func(context.Context) error {
	if s.sp.SSHAuthorizedKey == "" {
		return nil
	}
	key := filepath.Join(s.o.StateDir, spec.SSHKeyFile)
	return func(ctx context.Context) error {
		if !s.sshReady.Load() {
			return fmt.Errorf("SSH is not ready yet")
		}
		return s.guestSSH(ctx, key, "sh", "-c", dropCaches)
	}
}

// shareName names a helper by what it serves.
func shareName(helper string) string {
	if helper == "virtiofsd" {
		return "virtiofsd for the image root"
	}
	return strings.TrimSpace(helper)
}
