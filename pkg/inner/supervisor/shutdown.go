package supervisor

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/sirupsen/logrus"
)

// monitor is the part of QMP the ladder needs.
type monitor interface {
	Execute(ctx context.Context, cmd string, args any) (json.RawMessage, error)
}

// ladder stops a VM: ask the guest over QMP, wait, then kill.
type ladder struct {
	qmp     monitor
	done    <-chan struct{} // QEMU exited
	kill    func()
	timeout time.Duration // for the guest to power off
	repeat  time.Duration // between presses of the power button
	qmpWait time.Duration
}

// run returns the exit status and the reason. A second signal kills at once.
func (l ladder) run(ctx context.Context, sigs <-chan os.Signal) (int, string) {
	if l.qmpWait == 0 {
		l.qmpWait = DefaultTiming().QMPTimeout
	}
	if err := l.press(ctx); err != nil {
		logrus.Warnf("could not ask the guest to power off (%v); stopping QEMU", err)
		l.kill()
		return ExitKilled, "stopped on request; the guest could not be asked to power off"
	}
	t := time.NewTimer(l.timeout)
	defer t.Stop()
	// A power-button press is lost while the guest has nobody listening for
	// it yet (early in boot, before udev loaded the ACPI button driver and
	// logind opened it), so it is pressed again until the guest reacts.
	again := time.NewTicker(l.repeat)
	defer again.Stop()
	for {
		select {
		case <-l.done:
			return ExitPoweredOff, "the guest powered off on request"
		case <-again.C:
			_ = l.press(ctx)
			continue
		case <-t.C:
			logrus.Warnf("the guest did not power off within %s; killing QEMU", l.timeout)
		case sig := <-sigs:
			logrus.Warnf("received %v again; killing QEMU", sig)
		case <-ctx.Done():
		}
		l.kill()
		return ExitKilled, "the guest did not power off in time and was killed"
	}
}

func (l ladder) press(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.qmpWait)
	defer cancel()
	_, err := l.qmp.Execute(ctx, "system_powerdown", nil)
	return err
}
