package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeMonitor counts power-button presses; the guest powers off at the
// press numbered offAt (0: never).
type fakeMonitor struct {
	mu      sync.Mutex
	presses int
	offAt   int
	err     error
	done    chan struct{}
}

func (f *fakeMonitor) Execute(_ context.Context, cmd string, _ any) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if cmd == "system_powerdown" {
		if f.presses++; f.presses == f.offAt {
			close(f.done)
		}
	}
	return json.RawMessage("{}"), nil
}

func TestLadder(t *testing.T) {
	for _, c := range []struct {
		name    string
		offAt   int
		err     error
		signal  bool
		code    int
		reason  string
		presses int
	}{
		{"powers off at once", 1, nil, false, ExitPoweredOff, "the guest powered off on request", 1},
		{"the first press is lost", 3, nil, false, ExitPoweredOff, "the guest powered off on request", 3},
		{"never", 0, nil, false, ExitKilled, "the guest did not power off in time and was killed", -1},
		{"a second signal", 0, nil, true, ExitKilled, "the guest did not power off in time and was killed", -1},
		{"no monitor", 0, errors.New("QEMU has no monitor"), false, ExitKilled, "stopped on request; the guest could not be asked to power off", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &fakeMonitor{offAt: c.offAt, err: c.err, done: make(chan struct{})}
			killed := false
			timeout := 300 * time.Millisecond
			if c.signal {
				timeout = time.Minute
			}
			l := ladder{qmp: m, done: m.done, kill: func() { killed = true }, timeout: timeout, repeat: 20 * time.Millisecond}
			sigs := make(chan os.Signal, 1)
			if c.signal {
				sigs <- syscall.SIGTERM
			}
			start := time.Now()
			code, reason := l.run(t.Context(), sigs)
			if code != c.code || reason != c.reason || killed != (code == ExitKilled) {
				t.Fatalf("got %d %q killed=%v", code, reason, killed)
			}
			if c.presses >= 0 && m.presses != c.presses {
				t.Errorf("%d presses", m.presses)
			}
			if c.signal && time.Since(start) > 10*time.Second {
				t.Errorf("a second signal waited %s", time.Since(start))
			}
		})
	}
}
