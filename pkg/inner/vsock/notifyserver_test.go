package vsock

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

func notifyListener(t *testing.T) (net.Listener, string) {
	t.Helper()
	uds := filepath.Join(t.TempDir(), "vm.vsock")
	l, err := UnixListen(uds, 9)
	if err != nil {
		t.Fatal(err)
	}
	return l, UnixListenPath(uds, 9)
}

// send does what systemd does: connect, write one message, close.
func send(path, msg string) error {
	c, err := net.Dial("unix", path)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = io.WriteString(c, msg)
	return err
}

func TestNotifyServer(t *testing.T) {
	l, path := notifyListener(t)
	logger, hook := test.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	srv := &NotifyServer{Timeout: 2 * time.Second, Log: logger}
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan Notify)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l, out) }()

	// A slow loris: connects and never writes nor closes. (Bytes that
	// stop arriving end a message: see NotifyIdle.)
	loris, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer loris.Close()

	start := time.Now()
	const writers = 100
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			if err := send(path, fmt.Sprintf("STATUS=writer %d\nX_SYSTEMD_UNIT_ACTIVE=u%d.service\n", i, i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		// Oversized: the server stops reading after the limit, so the
		// write may fail; that is fine.
		send(path, "STATUS="+strings.Repeat("x", 2*MaxNotifyBytes))
	})
	wg.Go(func() {
		// Written in two parts with a pause shorter than NotifyIdle: one
		// message.
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		io.WriteString(c, "STATUS=split ")
		time.Sleep(NotifyIdle / 5)
		io.WriteString(c, "message\nX_SYSTEMD_UNIT_ACTIVE=usplit\n")
	})
	wg.Go(func() {
		if err := send(path, "no assignments here\x1b[2J"); err != nil {
			t.Error(err)
		}
	})
	seen := map[string]bool{}
	for range writers + 1 {
		select {
		case n := <-out:
			if seen[n.Status] {
				t.Fatalf("%q twice", n.Status)
			}
			seen[n.Status] = true
			if !strings.HasPrefix(n.UnitActive, "u") {
				t.Fatalf("got %+v", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d messages", len(seen), writers)
		}
	}
	if !seen["split message"] {
		t.Errorf("the message written in two parts did not arrive whole")
	}
	// The slow loris held no one up: all arrived within its timeout.
	if d := time.Since(start); d >= srv.Timeout {
		t.Fatalf("messages took %v, the slow loris's whole timeout", d)
	}
	wg.Wait()

	// The loris, the oversized and the garbage messages are counted once
	// the loris times out.
	deadline := time.Now().Add(5 * time.Second)
	for srv.Malformed() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := srv.Malformed(); got != 3 {
		t.Fatalf("malformed %d, want 3", got)
	}
	for _, e := range hook.AllEntries() {
		if e.Level != logrus.DebugLevel {
			t.Errorf("logged at %v: %s", e.Level, e.Message)
		}
		if strings.Contains(e.Message, "\x1b") || strings.Contains(e.Message, "xxxx") {
			t.Errorf("guest bytes in the log: %q", e.Message)
		}
	}
	if len(hook.AllEntries()) != 3 {
		t.Errorf("%d log entries, want 3", len(hook.AllEntries()))
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.Dial("unix", path); err == nil {
		t.Fatal("listener still open after Serve returned")
	}
}

func TestNotifyServerDoesNotBlockOnOutAfterCancel(t *testing.T) {
	l, path := notifyListener(t)
	srv := &NotifyServer{}
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan Notify) // nobody reads
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l, out) }()
	if err := send(path, "READY=1"); err != nil {
		t.Fatal(err)
	}
	// A connection that is still being read when ctx ends is cut short.
	loris, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer loris.Close()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-served:
	case <-time.After(2 * time.Second):
		t.Fatal("Serve blocked on out or on a connection after cancel")
	}
	if srv.Malformed() != 0 {
		t.Fatalf("cancellation counted as %d malformed messages", srv.Malformed())
	}
}

func TestNotifyServerMaxConns(t *testing.T) {
	l, path := notifyListener(t)
	srv := &NotifyServer{MaxConns: 2, Timeout: 200 * time.Millisecond}
	out := make(chan Notify, 1)
	go srv.Serve(t.Context(), l, out)
	// Two slow lorises fill the slots; the next message waits for a
	// timeout, and then gets through.
	for range 2 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if err := send(path, "READY=1"); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-out:
		if !n.Ready {
			t.Fatalf("got %+v", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("message never delivered")
	}
}

func TestNotifyServerListenerClosedElsewhere(t *testing.T) {
	l, _ := notifyListener(t)
	l.Close()
	err := (&NotifyServer{}).Serve(t.Context(), l, make(chan Notify))
	if err == nil || !strings.Contains(err.Error(), "receiving sd_notify messages") {
		t.Fatalf("got %v", err)
	}
}
