package vm

import (
	"path/filepath"
	"time"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
)

// warningPoll is how often a running VM's events are read for warnings.
const warningPoll = time.Second

// Warnings returns the warnings bcvk-inner recorded for the VM in dir.
func Warnings(dir string) []string {
	evs, _ := events.NewReader(filepath.Join(dir, spec.EventsFile)).Next()
	var out []string
	for _, e := range evs {
		if e.Phase == events.PhaseWarning {
			out = append(out, e.Message)
		}
	}
	return out
}

// WatchWarnings logs the VM's new warnings (those after now) while a
// command runs in it, until the returned stop is called: a VM that runs
// short of something says so while the user's command still runs.
func WatchWarnings(dir string) (stop func()) {
	r := events.NewReader(filepath.Join(dir, spec.EventsFile))
	_, _ = r.Next() // what came before was shown by the boot, or is old
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(warningPoll)
		defer t.Stop()
		for {
			select {
			case <-done:
			case <-t.C:
			}
			evs, _ := r.Next()
			for _, e := range evs {
				if e.Phase == events.PhaseWarning {
					logrus.Warn(e.Message)
				}
			}
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
