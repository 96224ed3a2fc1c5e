// Package guest says what phase a VM's guest is in, from what the VM
// reports: console lines, QMP events (and later systemd notifications over
// vsock). It is a pure function: the supervisor feeds it and reacts to the
// changes.
package guest

import (
	"strings"

	"github.com/bcvk/bcvk/pkg/inner/guestinit"
)

// Phase is how far the guest got, in boot order; the end phases last.
type Phase int

const (
	Firmware   Phase = iota // QEMU started, the guest printed nothing yet
	Kernel                  // the guest printed something: its kernel runs
	Handover                // bcvk's init handed over to the image's init
	Systemd                 // the image's systemd announced itself
	SSHReady                // sshd greeted
	PoweredOff              // the guest powered off
	Rebooted                // the guest reset (and so the VM ends: -no-reboot)
	Panicked                // the guest kernel panicked
	BootFailed              // bcvk's init could not mount the root or find init
)

var phaseNames = [...]string{"firmware", "kernel", "init handover", "systemd", "SSH ready", "powered off", "rebooted", "panicked", "boot failed"}

func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "unknown"
}

// Kind says what an Input is.
type Kind int

const (
	ConsoleOutput Kind = iota // the guest printed its first bytes (Text empty)
	ConsoleLine               // one console line, escape codes removed
	QMPEvent                  // Text is the event name, Detail its reason or status
	SSHGreeted                // the probe saw sshd's greeting
)

// Input is one thing the VM reported.
type Input struct {
	Kind   Kind
	Text   string
	Detail string
}

// State is what is known of the guest.
type State struct {
	Phase Phase
	// Output says the guest printed anything.
	Output bool
	// HandedOver says the image's init took over: from then on the guest
	// has run code that may have changed something.
	HandedOver bool
	// PanicLine is the kernel's "Kernel panic - ..." line, when it printed one.
	PanicLine string
	// BootError is bcvk's init's fatal error.
	BootError string
	// Paused says QEMU stopped the vCPUs (STOP without RESUME).
	Paused bool
}

// Ended says the guest reached an end phase.
func (s State) Ended() bool { return s.Phase >= PoweredOff }

// Step returns the state after in.
func Step(s State, in Input) State {
	switch in.Kind {
	case ConsoleOutput:
		s.Output = true
		s.advance(Kernel)
	case ConsoleLine:
		s.Output = true
		s.advance(Kernel)
		s = line(s, in.Text)
	case QMPEvent:
		s = event(s, in.Text, in.Detail)
	case SSHGreeted:
		s.advance(SSHReady)
	}
	return s
}

// advance moves to p unless the guest is already further (or ended).
func (s *State) advance(p Phase) {
	if p > s.Phase {
		s.Phase = p
	}
}

// end records an end phase; the first cause wins, but a panic or a boot
// failure explains a reset better than the reset itself.
func (s *State) end(p Phase) {
	switch {
	case !s.Ended(), p == Panicked && s.Phase != BootFailed, p == BootFailed:
		s.Phase = p
	}
}

const panicText = "Kernel panic - not syncing"

func line(s State, l string) State {
	switch {
	case strings.Contains(l, guestinit.ErrorMarker):
		s.BootError = l[strings.Index(l, guestinit.ErrorMarker)+len(guestinit.ErrorMarker):]
		s.end(BootFailed)
	case strings.Contains(l, panicText):
		if s.PanicLine == "" {
			s.PanicLine = strings.TrimSpace(l[strings.Index(l, panicText):])
		}
		s.end(Panicked)
	case strings.Contains(l, guestinit.Marker+guestinit.HandoverMessage):
		s.HandedOver = true
		s.advance(Handover)
	case s.HandedOver && strings.Contains(l, "Welcome to "):
		s.advance(Systemd)
	case strings.Contains(l, "reboot: Restarting system"):
		// -no-reboot turns the reset into QEMU's exit; QMP's SHUTDOWN
		// says the same when the connection still carries it.
		s.end(Rebooted)
	case strings.Contains(l, "reboot: Power down"):
		s.end(PoweredOff)
	}
	return s
}

func event(s State, name, detail string) State {
	switch name {
	case "SHUTDOWN":
		switch detail {
		case "guest-shutdown":
			s.end(PoweredOff)
		case "guest-reset":
			s.end(Rebooted)
		case "guest-panic":
			s.end(Panicked)
		}
	case "GUEST_PANICKED":
		s.end(Panicked)
	case "STOP":
		s.Paused = true
	case "RESUME":
		s.Paused = false
	}
	return s
}
