package supervisor

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/machine"
	"github.com/bcvk/bcvk/pkg/inner/sshprobe"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
)

// startProbe reports SSH ready once m's sshd greets (after saving a warm
// VM, when asked to). The probe ends with m's QEMU or the returned cancel.
func (s *supervisor) startProbe(ctx context.Context, m *machine.Machine) context.CancelFunc {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-m.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	go func() {
		var err error
		if s.tp.transport == spec.TransportVsock {
			watch := vsockWatch{limit: s.o.Timing.VsockSilence}
			dial := func(ctx context.Context) (net.Conn, error) {
				armed, start := s.handoverReported.Load(), time.Now()
				c, err := s.dialer.Dial(ctx, spec.GuestVsockSSHPort)
				if watch.observe(armed, !unanswered(err), start, time.Now()) {
					// The main loop boots the VM again once QEMU is gone.
					s.vsockDead.Store(true)
					m.Kill()
				}
				return c, err
			}
			err = sshprobe.WaitDial(ctx, dial, sshprobe.DefaultInterval, sshprobe.DefaultBannerWait, nil)
		} else {
			err = sshprobe.New(fmt.Sprintf("127.0.0.1:%d", spec.GuestNetProbePort), fmt.Sprintf("127.0.0.1:%d", spec.GuestSSHPort)).Wait(ctx)
		}
		if err != nil {
			return
		}
		if s.sp.Warm == spec.WarmSave {
			s.saveWarm(ctx, m)
			if err := s.attachShares(ctx, m); err != nil {
				s.attachErr.Store(&err)
				m.Kill()
				return
			}
		}
		s.sshReady.Store(true)
		s.ev.Emit(events.PhaseSSH, "SSH is ready")
		logrus.Info("SSH is ready")
		select {
		case s.ready <- struct{}{}:
		default:
		}
	}()
	return cancel
}
