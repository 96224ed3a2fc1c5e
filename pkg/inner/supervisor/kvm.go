package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/inner/guest"
	"github.com/bcvk/bcvk/pkg/inner/machine"
	"github.com/bcvk/bcvk/pkg/inner/qemu"
	"github.com/sirupsen/logrus"
)

// watchKVM watches a KVM boot. It succeeds when the guest prints anything,
// or when the guest is silent but its vCPUs run (a quiet guest or a loaded
// host). It fails when QEMU exits, when QEMU reports that KVM could not run
// the guest (STOP with the run state internal-error, GUEST_PANICKED), or
// when the vCPUs made no progress within the spec's probe timeout: then
// broken says KVM itself failed, which the host remembers for later VMs. A
// failure that proves nothing about KVM falls back for this VM only.
func (s *supervisor) watchKVM(ctx context.Context, m *machine.Machine) (ok bool, why string, broken bool) {
	d := time.Duration(s.sp.AccelProbeTimeout)
	t := time.NewTimer(d)
	defer t.Stop()
	inputs := m.Inputs()
	for {
		select {
		case in, open := <-inputs:
			if !open {
				inputs = nil
				continue
			}
			s.observe(in)
			switch {
			case s.state.Output:
				return true, "", false
			case in.Kind == guest.QMPEvent && in.Text == "GUEST_PANICKED":
				return false, "QEMU reports guest-panicked", true
			case in.Kind == guest.QMPEvent && in.Text == "STOP":
				qctx, cancel := context.WithTimeout(ctx, s.o.Timing.QMPTimeout)
				st, err := m.QMP().Status(qctx)
				cancel()
				if err == nil && st == "internal-error" {
					return false, "QEMU reports " + st, true
				}
			}
		case <-m.Done():
			return false, "QEMU " + m.QEMU().ExitDescription(), true
		case <-t.C:
			progress, err := s.sampleVCPUs(ctx, m)
			switch {
			case progress:
				logrus.Infof("the guest printed nothing within %s, but its vCPUs run: staying with KVM", d)
				return true, "", false
			case err != nil:
				return false, fmt.Sprintf("the guest printed nothing within %s and its vCPUs could not be read (%v)", d, err), false
			}
			return false, fmt.Sprintf("the guest printed nothing within %s and its vCPUs made no progress", d), true
		}
	}
}

// kvmFallback says why this VM boots again with TCG.
func (s *supervisor) kvmFallback(why string, broken bool) {
	if broken {
		msg := "KVM does not work here (" + why + "; nested KVM fails like this): booting again with TCG software emulation, which is slower"
		logrus.Warn(msg)
		s.ev.Warn(events.CodeKVMUnusable, msg) // the host remembers this
		return
	}
	msg := "KVM boot unclear (" + why + "): booting this VM again with TCG software emulation"
	logrus.Warn(msg)
	s.ev.Emit(events.PhaseWarning, msg)
}

// sampleVCPUs reads the vCPUs' instruction pointers a few times and says
// whether any moved; err is the last read's error when no read succeeded.
func (s *supervisor) sampleVCPUs(ctx context.Context, m *machine.Machine) (bool, error) {
	var samples [][]uint64
	var lastErr error
	for i := 0; i < s.o.Timing.KVMSamples; i++ {
		if i > 0 {
			select {
			case <-m.Done():
				return false, errors.New("QEMU " + m.QEMU().ExitDescription())
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(s.o.Timing.KVMSampleInterval):
			}
		}
		qctx, cancel := context.WithTimeout(ctx, s.o.Timing.QMPTimeout)
		rips, err := qemu.InstructionPointers(qctx, m.QMP())
		cancel()
		if err != nil || len(rips) == 0 {
			lastErr = err
			continue
		}
		samples = append(samples, rips)
	}
	if len(samples) < 2 {
		if lastErr == nil {
			lastErr = errors.New("no registers in QEMU's answer")
		}
		return false, lastErr
	}
	return qemu.VCPUsProgress(samples), nil
}
