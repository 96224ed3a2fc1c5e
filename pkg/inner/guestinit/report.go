package guestinit

import (
	"fmt"
	"net"
	"time"

	"github.com/mdlayher/vsock"
)

// reportDialTimeout bounds the one attempt to reach bcvk-inner: the boot
// does not wait for a report channel (the console says the same).
const reportDialTimeout = 500 * time.Millisecond

// reporter sends the init's steps to bcvk-inner over vsock, one line each.
// Without a connection it does nothing.
type reporter struct{ c net.Conn }

// dialReporter connects to the host's port, or returns a silent reporter.
func dialReporter(port uint32) *reporter {
	if port == 0 {
		return &reporter{}
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := vsock.Dial(vsock.Host, port, nil)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			logf("no vsock report channel: %v", r.err)
			return &reporter{}
		}
		return &reporter{c: r.c}
	case <-time.After(reportDialTimeout):
		logf("no vsock report channel: no answer within %s", reportDialTimeout)
		return &reporter{}
	}
}

func (r *reporter) step(format string, args ...any) {
	if r.c == nil {
		return
	}
	_ = r.c.SetWriteDeadline(time.Now().Add(reportDialTimeout))
	if _, err := fmt.Fprintf(r.c, format+"\n", args...); err != nil {
		r.close()
	}
}

func (r *reporter) close() {
	if r.c != nil {
		r.c.Close()
		r.c = nil
	}
}
