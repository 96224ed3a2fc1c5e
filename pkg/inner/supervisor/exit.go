package supervisor

import (
	"github.com/bcvk/bcvk/pkg/inner/guest"
	"github.com/bcvk/bcvk/pkg/inner/proc"
	"golang.org/x/sys/unix"
)

// endOf says how a VM ended whose QEMU q exited by itself, from what the
// guest reported and QEMU's exit status.
func endOf(st guest.State, q *proc.Proc) (int, string) {
	ws := q.Status()
	clean := ws.Exited() && ws.ExitStatus() == 0
	switch {
	case st.Phase == guest.BootFailed:
		return ExitGuestBoot, "the guest could not boot: " + st.BootError
	case st.Phase == guest.Panicked && st.PanicLine != "":
		return ExitPanic, "the guest kernel panicked: " + st.PanicLine
	case st.Phase == guest.Panicked:
		return ExitPanic, "the guest kernel panicked (QEMU's pvpanic device says so; the console has no panic line)"
	case clean && st.Phase == guest.Rebooted:
		return ExitPoweredOff, "the guest rebooted, and an ephemeral VM ends when its guest reboots"
	case clean:
		return ExitPoweredOff, "the guest powered off"
	}
	return ExitQEMU, "QEMU " + q.ExitDescription() + q.Output()
}

// crashedEarly reports a QEMU that died of a crash (not of a kill, which is
// somebody's intent) before the guest's init took over: nothing the guest
// could have done is lost, so the VM can simply start again. QEMU 10's TCG
// here aborts now and then in PCI set-up ("msix_table_mmio_write:
// Assertion ... failed", about 1 boot in 30 with two VMs at once). A
// restored VM is never started again: its state was in that QEMU.
func crashedEarly(st guest.State, q *proc.Proc, restored bool) (string, bool) {
	ws := q.Status()
	if !ws.Signaled() || restored {
		return "", false
	}
	switch ws.Signal() {
	case unix.SIGABRT, unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE:
	default:
		return "", false
	}
	if st.HandedOver || st.Phase == guest.Panicked || st.Phase == guest.BootFailed {
		return "", false
	}
	return "QEMU " + q.ExitDescription() + q.Output(), true
}
