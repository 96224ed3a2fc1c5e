package journal

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// journald reconnects after a failure: both connections' entries arrive.
func TestServerConnectionsAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vm.vsock_8714")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	sink := NewSink(0, nil)
	sink.Add("buffer", &out)
	srv := &Server{Sink: sink}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()

	send := func(s string, close bool) net.Conn {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		if close {
			c.Close()
		}
		return c
	}
	send(entry(text("__REALTIME_TIMESTAMP", "1796043911123456"), text("SYSLOG_IDENTIFIER", "one"), text("MESSAGE", "first"))+"garbage\n", true)
	waitFor(t, &out, "one: first")
	// The second stays open, as journald's does, until bcvk-inner ends.
	c := send(entry(text("SYSLOG_IDENTIFIER", "two"), bin("MESSAGE", "second\nline")), false)
	defer c.Close()
	waitFor(t, &out, `two: second\nline`)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return once its context ended")
	}
	if got := out.String(); !strings.HasPrefix(got, "2026-11-30T13:05:11.123456Z one: first\n") || strings.Count(got, "\n") != 2 {
		t.Fatalf("got %q", got)
	}
	if srv.Entries() != 2 || srv.Malformed() != 1 {
		t.Errorf("entries %d, malformed %d", srv.Entries(), srv.Malformed())
	}
}

func waitFor(t *testing.T, b *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("%q did not arrive; got %q", s, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
