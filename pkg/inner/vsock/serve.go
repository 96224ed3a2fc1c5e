package vsock

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// ServeConns accepts connections on l and runs handle for each, at most
// maxConns at once (past that, connections wait in the listen queue),
// until ctx ends; then it closes l, waits for the handlers and returns
// nil. handle must return once ctx ends. An accept error other than
// running short of resources closes l and ends ServeConns early; what
// names the service in that error and in the log.
func ServeConns(ctx context.Context, l net.Listener, maxConns int, what string, log logrus.FieldLogger, handle func(context.Context, net.Conn)) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, max(maxConns, 1))
	backoff := 5 * time.Millisecond
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			l.Close()
			return nil
		}
		c, err := l.Accept()
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return nil
			}
			if !transient(err) {
				l.Close()
				return fmt.Errorf("receiving %s: %w", what, err)
			}
			log.Warnf("accepting a connection for %s: %v; retrying", what, err)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		wg.Go(func() {
			defer func() { <-slots }()
			handle(ctx, c)
		})
	}
}
