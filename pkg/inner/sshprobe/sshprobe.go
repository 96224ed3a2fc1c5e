// Package sshprobe waits until a guest's sshd greets through QEMU's user
// networking.
//
// Probing through user networking has two traps:
//   - Before the guest has an address, QEMU accepts our connection and
//     retries its SYN towards the guest with growing back-off, even after we
//     close our end: a probe can sit for many seconds after sshd is up, and
//     a probe we gave up on reaches sshd later anyway.
//   - OpenSSH 9.8+ blocks a source after about 15 connections that close
//     without logging in (PerSourcePenalties), and all our connections come
//     from one address.
//
// So first the guest's network is probed on a port where nothing listens
// (forwarded to the guest's port 1): silent means no address yet, so the
// probe is replaced by a fresh one quickly; a refusal means the guest is on
// the network. Only then is sshd probed, one connection at a time, each
// waiting patiently for its greeting. A greeting is enough: the key arrives
// as a credential that systemd-tmpfiles installs long before sshd starts.
package sshprobe

import (
	"context"
	"errors"
	"io"
	"net"
	"time"
)

// Clock is the time the probe waits by; tests may speed it up.
type Clock interface {
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Probe is one SSH readiness wait.
type Probe struct {
	NetAddr string // forwarded to a guest port where nothing listens
	SSHAddr string // forwarded to the guest's sshd
	// Interval is the pause between probes that found nothing listening
	// (QEMU's forward not yet there) or no greeting.
	Interval time.Duration
	// NetWait is how long a network probe waits for the guest's refusal.
	NetWait time.Duration
	// MaxSilent silent network probes make the probe go to sshd anyway
	// (something may listen on the guest's port 1).
	MaxSilent int
	// BannerWait is how long one sshd probe waits for the greeting.
	BannerWait time.Duration
	Clock      Clock
}

// Defaults, measured under TCG.
const (
	DefaultInterval   = 100 * time.Millisecond
	DefaultNetWait    = time.Second
	DefaultMaxSilent  = 120
	DefaultBannerWait = 15 * time.Second
)

// New returns a probe with the default timings.
func New(netAddr, sshAddr string) *Probe {
	return &Probe{NetAddr: netAddr, SSHAddr: sshAddr, Interval: DefaultInterval, NetWait: DefaultNetWait,
		MaxSilent: DefaultMaxSilent, BannerWait: DefaultBannerWait, Clock: realClock{}}
}

// Wait returns nil when sshd greeted, or the context's error.
func (p *Probe) Wait(ctx context.Context) error {
	netUp := false
	silent := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !netUp {
			switch Banner(ctx, p.NetAddr, p.NetWait) {
			case Refused:
				netUp = true
				continue
			case Silent, Greeted:
				// Something listens on the probe port: rely on sshd probes
				// after a while. A silent probe already waited.
				if silent++; silent >= p.MaxSilent {
					netUp = true
				}
				continue
			}
			// Nothing accepts yet (QEMU's forward is not there): wait, don't spin.
		} else if Banner(ctx, p.SSHAddr, p.BannerWait) == Greeted {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.Clock.After(p.Interval):
		}
	}
}

// Result is what one connection found.
type Result int

const (
	Failed  Result = iota // could not connect at all
	Refused               // closed at once: nothing listens in the guest yet
	Silent                // no greeting within the wait
	Greeted               // "SSH-" arrived
)

// Banner makes one connection to addr and waits up to wait for a greeting.
func Banner(ctx context.Context, addr string, wait time.Duration) Result {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Failed
	}
	return greeted(ctx, c, wait)
}

// greeted waits up to wait for c's greeting and closes c.
func greeted(ctx context.Context, c net.Conn, wait time.Duration) Result {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4)
	_, err := io.ReadFull(c, buf)
	var ne net.Error
	switch {
	case err == nil && string(buf) == "SSH-":
		return Greeted
	case errors.As(err, &ne) && ne.Timeout():
		return Silent
	}
	return Refused
}

// DialFunc connects to the guest's sshd; a refusal (nothing listens yet)
// is an error like any other to the probe.
type DialFunc func(ctx context.Context) (net.Conn, error)

// WaitDial returns nil when sshd greets through dial (vsock: no network to
// wait for, and no penalties, since sshd runs per connection), or the
// context's error. Failed connections are retried every interval.
func WaitDial(ctx context.Context, dial DialFunc, interval, bannerWait time.Duration, clock Clock) error {
	if clock == nil {
		clock = realClock{}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		dctx, cancel := context.WithTimeout(ctx, bannerWait)
		c, err := dial(dctx)
		cancel()
		if err == nil && greeted(ctx, c, bannerWait) == Greeted {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-clock.After(interval):
		}
	}
}
