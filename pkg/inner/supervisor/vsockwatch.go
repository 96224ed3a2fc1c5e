package supervisor

import (
	"context"
	"errors"
	"time"
)

// defaultVsockSilence is how long the guest's vsock device may leave every
// dial unanswered, once the guest init has loaded the vsock modules,
// before bcvk-inner takes it for dead. An answer takes milliseconds, a
// second or two when five TCG guests share two CPUs.
const defaultVsockSilence = time.Minute

// vsockWatch tells a dead vsock device from a guest whose sshd is not up
// yet. Either way no SSH comes, but a live device answers every dial: with
// a refusal (nobody listens on the port yet) or with a connection. A dial
// that waits out its deadline got no answer. The userspace device
// (vhost-device-vsock 0.3.0) has now and then stopped answering for the
// rest of a boot when several VMs started at once: without the watch the
// boot then hangs until --timeout.
type vsockWatch struct {
	limit time.Duration // zero: never judged dead
	since time.Time     // the start of the first unanswered dial in a row
}

// observe takes one dial, started at start (after the guest init handed
// over, if armed) and ended at end, and says whether the device is dead.
func (w *vsockWatch) observe(armed, answered bool, start, end time.Time) bool {
	if !armed || answered || w.limit <= 0 {
		w.since = time.Time{}
		return false
	}
	if w.since.IsZero() {
		w.since = start
	}
	return end.Sub(w.since) >= w.limit
}

// unanswered says a dial's error is the wait for the guest running out,
// not an answer (a refusal, a closed connection) or the probe ending.
func unanswered(err error) bool {
	return err != nil && errors.Is(err, context.DeadlineExceeded)
}
