package supervisor

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/fdwatch"
	"github.com/bcvk/bcvk/pkg/inner/machine"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/sshclient"
	"github.com/sirupsen/logrus"
)

// Named settings of the descriptor watch.
const (
	// fdWatchInterval is how often each virtiofsd's open descriptors are
	// counted (a directory read of /proc/PID/fd); a walk of a large image
	// takes minutes, so the warning comes well before the limit.
	fdWatchInterval = time.Second
	// fdWatchCloseInterval is the rate from ReclaimPercent on, so that a
	// short peak at the limit is seen.
	fdWatchCloseInterval = 200 * time.Millisecond
	// reclaimEvery bounds how often the guest is asked to drop its caches
	// (each costs it re-lookups of what it reads again).
	reclaimEvery = 2 * time.Second
	// reclaimTimeout bounds one such request.
	reclaimTimeout = 30 * time.Second
)

// dropCaches makes the guest's kernel forget the dentries and inodes that
// nothing uses: for each, it tells virtiofsd (FUSE FORGET), which closes
// the descriptor it held. Files in use stay; later lookups cost a round
// trip again. Builtins only (see guestShell).
const dropCaches = "echo 2 > /proc/sys/vm/drop_caches"

// watchFDs watches m's virtiofsd processes until m's QEMU ends. From
// ReclaimPercent of its limit on, the guest is asked to give cached inodes
// back (once SSH works, at most every reclaimEvery); a warning comes only
// when the count still reaches WarnPercent, and a plain message when it
// ran out.
func (s *supervisor) watchFDs(ctx context.Context, m *machine.Machine, interval time.Duration, reclaim func(context.Context) error) {
	if interval <= 0 {
		interval = fdWatchInterval
	}
	t := time.NewTimer(interval)
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
		next := interval
		for _, p := range m.Helpers() {
			smp, err := fdwatch.Read("/proc", p.Pid)
			if err != nil {
				continue // it ended; the machine reports that
			}
			l, rose := tr.Update(p.Name, smp)
			if l >= fdwatch.Reclaim {
				next = min(next, fdWatchCloseInterval)
			}
			before, beforeLevel := smp, l
			if l >= fdwatch.Reclaim && reclaim != nil && time.Since(lastReclaim) > reclaimEvery {
				lastReclaim = time.Now()
				rctx, cancel := context.WithTimeout(ctx, reclaimTimeout)
				err := reclaim(rctx)
				cancel()
				if after, rerr := fdwatch.Read("/proc", p.Pid); err == nil && rerr == nil {
					msg := fmt.Sprintf("%s held %d of %d file descriptors: bcvk asked the guest to drop its cached files, and it now holds %d",
						shareName(p.Name), smp.Open, smp.Limit, after.Open)
					logrus.Info(msg)
					s.ev.Emit(events.PhaseInfo, msg)
					smp = after
					l, _ = tr.Update(p.Name, after)
				}
			}
			switch {
			case !rose:
			case beforeLevel == fdwatch.Exhausted:
				// The guest's opens failed then, whatever the reclaim did.
				s.warnFDs(fdwatch.Message(shareName(p.Name), before, beforeLevel))
			case l >= fdwatch.High:
				s.warnFDs(fdwatch.Message(shareName(p.Name), smp, l))
			}
		}
		t.Reset(next)
	}
}

func (s *supervisor) warnFDs(msg string) {
	logrus.Warn(msg)
	s.ev.Warn(events.CodeFDLimit, msg)
}

// reclaimFunc asks the guest to drop its caches through a resident root
// shell, once SSH is ready; nil when bcvk has no login into the guest.
// The shell is started at the first need (at ReclaimPercent, while a
// login still finds descriptors) and kept, so that later requests work
// even when none are left. close ends it.
func (s *supervisor) reclaimFunc() (reclaim func(context.Context) error, close func()) {
	if s.sp.SSHAuthorizedKey == "" {
		return nil, func() {}
	}
	key := filepath.Join(s.o.StateDir, spec.SSHKeyFile)
	sh := &guestShell{table: s.table,
		argv: append([]string{s.o.SSH}, sshclient.Args(key, sshclient.ProxyCommand, nil, "root", []string{"sh"})...)}
	return func(ctx context.Context) error {
		if !s.sshReady.Load() {
			return errors.New("SSH is not ready yet")
		}
		return sh.run(ctx, dropCaches)
	}, sh.close
}

// shareName names a helper by what it serves.
func shareName(helper string) string {
	if helper == "virtiofsd" {
		return "virtiofsd for the image root"
	}
	return strings.TrimSpace(helper)
}
