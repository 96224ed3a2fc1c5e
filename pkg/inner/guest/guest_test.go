package guest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/consolelog"
)

// Lines as the sample image's console printed them (escape codes kept,
// then removed as the console watcher does).
var (
	kernelLine   = "[    0.000000] Linux version 6.12.117+deb13-amd64 (debian-kernel@lists.debian.org)"
	initStarted  = "bcvk-init: started"
	handover     = "bcvk-init: handing over to /sbin/init"
	welcome      = "\x1b[0;1;39mWelcome to \x1b[0m\x1b[1mDebian GNU/Linux 13 (trixie)\x1b[0m\x1b[0;1;39m!\x1b[0m"
	initrdHello  = "Welcome to Debian GNU/Linux 13 (trixie) dracut-106 (Initramfs)!"
	panicLine    = "[  116.650108] Kernel panic - not syncing: sysrq triggered crash"
	rebootLine   = "[   31.412015] reboot: Restarting system"
	powerDown    = "[   30.104431] reboot: Power down"
	bootError    = "bcvk-init: error: mounting the image root (virtiofs tag rootfs): no such device"
	sysrqTrigger = "[  116.648871] sysrq: Trigger a crash"
)

func con(l string) Input { return Input{Kind: ConsoleLine, Text: consolelog.Clean(l)} }
func ev(name, detail string) Input {
	return Input{Kind: QMPEvent, Text: name, Detail: detail}
}

func TestStep(t *testing.T) {
	for _, c := range []struct {
		name   string
		inputs []Input
		phase  Phase
		check  func(State) bool
	}{
		{"nothing yet", nil, Firmware, nil},
		{"first bytes", []Input{{Kind: ConsoleOutput}}, Kernel, func(s State) bool { return s.Output }},
		{"kernel", []Input{con(kernelLine), con(initStarted)}, Kernel, nil},
		{"an image initrd's welcome is not the image's systemd", []Input{con(kernelLine), con(initrdHello)}, Kernel, nil},
		{"handover", []Input{con(kernelLine), con(initStarted), con(handover)}, Handover, func(s State) bool { return s.HandedOver }},
		{"systemd", []Input{con(handover), con(welcome)}, Systemd, nil},
		{"ssh", []Input{con(handover), con(welcome), {Kind: SSHGreeted}}, SSHReady, nil},
		{"power-off by QMP", []Input{con(handover), ev("SHUTDOWN", "guest-shutdown")}, PoweredOff, nil},
		{"power-off by console", []Input{con(handover), con(powerDown)}, PoweredOff, nil},
		{"reboot by QMP", []Input{con(handover), ev("SHUTDOWN", "guest-reset")}, Rebooted, nil},
		{"reboot by console, then QMP", []Input{con(handover), con(rebootLine), ev("SHUTDOWN", "guest-reset")}, Rebooted, nil},
		{"panic", []Input{con(handover), con(sysrqTrigger), con(panicLine), ev("GUEST_PANICKED", ""), con(rebootLine), ev("SHUTDOWN", "guest-reset")}, Panicked,
			func(s State) bool { return s.PanicLine == "Kernel panic - not syncing: sysrq triggered crash" }},
		{"pvpanic before the console line", []Input{ev("GUEST_PANICKED", ""), con(panicLine)}, Panicked,
			func(s State) bool { return s.PanicLine != "" }},
		{"a reset explained by a panic", []Input{ev("SHUTDOWN", "guest-reset"), ev("GUEST_PANICKED", "")}, Panicked, nil},
		{"a panic after a power-off request", []Input{ev("SHUTDOWN", "guest-panic")}, Panicked, nil},
		{"boot failure wins", []Input{con(bootError), con(panicLine)}, BootFailed,
			func(s State) bool {
				return s.BootError == "mounting the image root (virtiofs tag rootfs): no such device"
			}},
		{"QEMU's own stop is no end", []Input{ev("SHUTDOWN", "host-signal")}, Firmware, nil},
		{"paused and resumed", []Input{ev("STOP", ""), ev("RESUME", "")}, Firmware, func(s State) bool { return !s.Paused }},
		{"paused", []Input{ev("STOP", "")}, Firmware, func(s State) bool { return s.Paused }},
		{"an end is not undone", []Input{ev("SHUTDOWN", "guest-shutdown"), con(handover), {Kind: SSHGreeted}}, PoweredOff, func(s State) bool { return s.Ended() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s State
			for _, in := range c.inputs {
				s = Step(s, in)
			}
			if s.Phase != c.phase || (c.check != nil && !c.check(s)) {
				t.Fatalf("state %+v (%s), want %s", s, s.Phase, c.phase)
			}
		})
	}
}

func TestPhaseNames(t *testing.T) {
	if Firmware.String() != "firmware" || BootFailed.String() != "boot failed" || Phase(99).String() != "unknown" {
		t.Fatal("names")
	}
}

func FuzzStep(f *testing.F) {
	for _, l := range []string{panicLine, handover, bootError, welcome} {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, l string) {
		s := Step(State{}, Input{Kind: ConsoleLine, Text: l})
		if len(s.PanicLine) > len(l) || len(s.BootError) > len(l) {
			t.Fatalf("state larger than its input: %+v", s)
		}
	})
}

// Real console captures of the sample image under TCG (a whole boot to a
// sysrq crash; the last lines the host showed of others), fed line by line.
func TestCaptures(t *testing.T) {
	for _, c := range []struct {
		file      string
		extra     []Input
		phase     Phase
		panicLine string
	}{
		{"sample-boot-sysrq-panic.log", nil, Panicked, "Kernel panic - not syncing: sysrq triggered crash"},
		{"early-panic.log", nil, Panicked, "Kernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with apic=debug and send a report.  Then try booting with the 'noapic' option."},
		// The host kept only the trace after the panic line: QMP tells.
		{"sysrq-panic.log", []Input{ev("GUEST_PANICKED", "")}, Panicked, ""},
		{"sysrq-panic.log", nil, Kernel, ""},
	} {
		t.Run(c.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			var s State
			var phases []Phase
			for _, l := range strings.Split(string(b), "\n") {
				if s = Step(s, con(l)); len(phases) == 0 || phases[len(phases)-1] != s.Phase {
					phases = append(phases, s.Phase)
				}
			}
			if c.file == "sample-boot-sysrq-panic.log" && !slices.Equal(phases, []Phase{Kernel, Handover, Systemd, Panicked}) {
				t.Errorf("phases %v", phases)
			}
			for _, in := range c.extra {
				s = Step(s, in)
			}
			if s.Phase != c.phase || s.PanicLine != c.panicLine {
				t.Fatalf("%s %q", s.Phase, s.PanicLine)
			}
		})
	}
}
