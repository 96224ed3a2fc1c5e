package sshprobe

import (
	"context"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// listen serves each connection with serve on a loopback port.
func listen(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return ln.Addr().String()
}

// closedPort is a loopback port where nothing listens.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func refuse(c net.Conn) {}

func silent(c net.Conn) { time.Sleep(5 * time.Second) }

func greet(c net.Conn) { _, _ = c.Write([]byte("SSH-2.0-OpenSSH_10.0\r\n")) }

func TestBanner(t *testing.T) {
	ctx := t.Context()
	for _, c := range []struct {
		name string
		addr string
		want Result
	}{
		{"nothing listens", closedPort(t), Failed},
		{"closed at once", listen(t, refuse), Refused},
		{"silent", listen(t, silent), Silent},
		{"greets", listen(t, greet), Greeted},
		{"greets late", listen(t, func(c net.Conn) { time.Sleep(200 * time.Millisecond); greet(c) }), Greeted},
		{"says something else", listen(t, func(c net.Conn) { _, _ = c.Write([]byte("HTTP/1.1 400\r\n")) }), Refused},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Banner(ctx, c.addr, time.Second); got != c.want {
				t.Fatalf("got %d, want %d", got, c.want)
			}
		})
	}
}

// countingClock counts the waits and passes at once.
type countingClock struct{ n atomic.Int64 }

func (c *countingClock) After(time.Duration) <-chan time.Time {
	c.n.Add(1)
	ch := make(chan time.Time, 1)
	ch <- time.Now()
	return ch
}

func TestWaitFollowsTheGuest(t *testing.T) {
	// The guest joins the network after a few probes, its sshd greets on
	// the third connection.
	var netTries, sshTries atomic.Int64
	netAddr := listen(t, func(c net.Conn) {
		if netTries.Add(1) < 3 {
			time.Sleep(2 * time.Second) // no address yet: QEMU holds the connection
		}
	})
	sshAddr := listen(t, func(c net.Conn) {
		if sshTries.Add(1) >= 3 {
			greet(c)
		}
	})
	clock := &countingClock{}
	p := New(netAddr, sshAddr)
	p.NetWait, p.BannerWait, p.Clock = 50*time.Millisecond, time.Second, clock
	if err := p.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if netTries.Load() != 3 || sshTries.Load() != 3 || clock.n.Load() != 2 {
		t.Fatalf("net %d, ssh %d, pauses %d", netTries.Load(), sshTries.Load(), clock.n.Load())
	}
}

func TestWaitGivesUpOnABusyProbePort(t *testing.T) {
	// Something in the guest greets on the probe port: after MaxSilent
	// probes, sshd is probed anyway.
	p := New(listen(t, greet), listen(t, greet))
	p.MaxSilent, p.Clock = 3, &countingClock{}
	if err := p.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Before QEMU's forward listens, the probe waits between tries instead of
// spinning: a second of it uses little CPU.
func TestWaitDoesNotSpin(t *testing.T) {
	p := New(closedPort(t), closedPort(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	before := cpuTime(t)
	if err := p.Wait(ctx); err == nil {
		t.Fatal("no error with nothing listening")
	}
	if used := cpuTime(t) - before; used > 200*time.Millisecond {
		t.Fatalf("used %s of CPU in one second of probing", used)
	}
}

func TestWaitEndsWithTheContext(t *testing.T) {
	p := New(listen(t, silent), listen(t, silent))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Wait(ctx); err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("%v after %s", err, time.Since(start))
	}
}

func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
