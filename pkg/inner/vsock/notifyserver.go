package vsock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults for NotifyServer.
const (
	DefaultNotifyTimeout  = 5 * time.Second
	DefaultNotifyMaxConns = 64
)

// NotifyServer receives sd_notify messages: systemd connects for each
// message, writes it and closes. The guest is not trusted: a connection
// gets Timeout to deliver at most MaxNotifyBytes, and at most MaxConns
// are read at once.
type NotifyServer struct {
	Timeout  time.Duration // zero: DefaultNotifyTimeout
	MaxConns int           // zero: DefaultNotifyMaxConns
	Log      logrus.FieldLogger

	malformed atomic.Uint64
}

// Malformed counts the messages dropped so far: oversized, incomplete
// within the timeout, or without any assignment.
func (s *NotifyServer) Malformed() uint64 { return s.malformed.Load() }

// Serve passes the messages arriving on l to out until ctx ends, then
// closes l, waits for the connections in progress and returns nil. A
// message is dropped rather than block for ever on out once ctx ends. An
// accept error other than running short of resources ends Serve early.
func (s *NotifyServer) Serve(ctx context.Context, l net.Listener, out chan<- Notify) error {
	return ServeConns(ctx, l, orDefault(s.MaxConns, DefaultNotifyMaxConns), "sd_notify messages", s.log(),
		func(ctx context.Context, c net.Conn) { s.handle(ctx, c, out) })
}

func (s *NotifyServer) handle(ctx context.Context, c net.Conn, out chan<- Notify) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	n, err := s.read(c)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		s.malformed.Add(1)
		s.log().WithField("remote", c.RemoteAddr().String()).Debugf("dropping an sd_notify message: %v", err)
		return
	}
	select {
	case out <- n:
	case <-ctx.Done():
	}
}

// NotifyIdle ends a message: systemd sends each in one write and then
// waits for us to close (after shutting down its side for writing, which
// the userspace vsock backend does not pass on: found by trying, each
// message then cost the guest's boot the whole Timeout). So a message is
// complete at EOF, or once its bytes stop arriving for this long.
const NotifyIdle = 50 * time.Millisecond

// read reads one whole message.
func (s *NotifyServer) read(c net.Conn) (Notify, error) {
	deadline := time.Now().Add(orDefault(s.Timeout, DefaultNotifyTimeout))
	if err := c.SetReadDeadline(deadline); err != nil {
		return Notify{}, err
	}
	var b []byte
	buf := make([]byte, MaxNotifyBytes+1)
	for len(b) <= MaxNotifyBytes {
		n, err := c.Read(buf[:MaxNotifyBytes+1-len(b)])
		b = append(b, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if len(b) > 0 && time.Now().Before(deadline) {
				break // idle after some bytes: the message is whole
			}
			return Notify{}, fmt.Errorf("incomplete after %v", orDefault(s.Timeout, DefaultNotifyTimeout))
		}
		if err != nil {
			return Notify{}, err
		}
		if len(b) > 0 {
			_ = c.SetReadDeadline(minTime(deadline, time.Now().Add(NotifyIdle)))
		}
	}
	return ParseNotify(b)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s *NotifyServer) log() logrus.FieldLogger {
	if s.Log == nil {
		return logrus.StandardLogger()
	}
	return s.Log
}

// orDefault returns v, or def when v is zero or less.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// transient reports accept errors worth retrying: the process or the
// system ran short of something, or a client gave up while queued.
func transient(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// sleep waits d and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
