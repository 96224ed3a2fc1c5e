package supervisor

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/spec"
)

func TestMain(m *testing.M) {
	if fakeMain() {
		return
	}
	os.Exit(m.Run())
}

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

type fixture struct {
	o      Options
	stderr *syncBuffer
}

// newFixture is an image with a kernel, a state directory with sp, and
// the test binary as QEMU and virtiofsd.
func newFixture(t *testing.T, sp spec.Spec, script, kvmScript string) *fixture {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "image")
	if err := os.MkdirAll(filepath.Join(img, "usr/lib/modules/6.12.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(img, "usr/lib/modules/6.12.0/vmlinuz"), []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := sp.Write(filepath.Join(state, spec.SpecFile)); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(fakeOn, "1")
	t.Setenv(fakeScript, script)
	t.Setenv(fakeScriptKVM, kvmScript)
	stderr := &syncBuffer{}
	o := DefaultOptions()
	o.ImageRoot, o.StateDir, o.RunDir = img, state, filepath.Join(dir, "run")
	o.DisksDir, o.WarmDir = filepath.Join(dir, "disks"), filepath.Join(dir, "warm")
	o.QEMU, o.Virtiofsd = self, self
	o.KVMUsable = func(string) error { return errors.New("no KVM in unit tests") }
	o.Stdin, o.Stdout, o.Stderr = nil, &syncBuffer{}, stderr
	o.Timing.KVMSampleInterval = 10 * time.Millisecond
	o.Timing.PowerdownRepeat = 50 * time.Millisecond
	return &fixture{o: o, stderr: stderr}
}

// run runs the supervisor with each child's role in its environment.
func (f *fixture) run(t *testing.T) (int, []events.Event) {
	t.Helper()
	code := Main(nil, f.o)
	evs, err := events.ReadAll(filepath.Join(f.o.StateDir, spec.EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	return code, evs
}

func testSpec() spec.Spec {
	sp := spec.New()
	sp.Name, sp.MemoryMiB, sp.VCPUs, sp.Accel = "t", 512, 1, spec.AccelTCG
	sp.ShutdownTimeout = spec.Duration(5 * time.Second)
	sp.AccelProbeTimeout = spec.Duration(200 * time.Millisecond)
	return sp
}

const handover = "say bcvk-init: handing over to /sbin/init"

func endEvent(t *testing.T, evs []events.Event) events.Event {
	t.Helper()
	for _, e := range evs {
		if e.Phase == events.PhaseExited {
			return e
		}
	}
	t.Fatalf("no exited event in %+v", evs)
	return events.Event{}
}

func hasPhase(evs []events.Event, phase, msgPart string) bool {
	for _, e := range evs {
		if e.Phase == phase && strings.Contains(e.Message, msgPart) {
			return true
		}
	}
	return false
}

func TestVMEnds(t *testing.T) {
	for _, c := range []struct {
		name, script string
		code         int
		reason       string
	}{
		{"poweroff", handover + "; say Welcome to Debian; event SHUTDOWN guest-shutdown; exit 0", ExitPoweredOff, "the guest powered off"},
		{"reboot by QMP", handover + "; event SHUTDOWN guest-reset; exit 0", ExitPoweredOff, "the guest rebooted, and an ephemeral VM ends when its guest reboots"},
		{"reboot by console", handover + "; say [   12.3] reboot: Restarting system; exit 0", ExitPoweredOff, "the guest rebooted"},
		{"panic", handover + "; say [   9.1] Kernel panic - not syncing: sysrq triggered crash; event GUEST_PANICKED; exit 0", ExitPanic,
			"the guest kernel panicked: Kernel panic - not syncing: sysrq triggered crash"},
		{"panic by pvpanic only", handover + "; event GUEST_PANICKED; exit 0", ExitPanic, "QEMU's pvpanic device"},
		{"boot failure", "say bcvk-init: error: mounting the root: no such device; exit 0", ExitGuestBoot, "the guest could not boot: mounting the root: no such device"},
		{"QEMU fails", "say x; exit 1", ExitQEMU, "QEMU exited with status 1"},
		{"crash after handover", handover + "; abort", ExitQEMU, "QEMU was killed by SIGABRT"},
		{"crash early again and again", "abort", ExitQEMU, "QEMU was killed by SIGABRT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, testSpec(), c.script, "")
			code, evs := f.run(t)
			end := endEvent(t, evs)
			if code != c.code || !strings.Contains(end.Message, c.reason) {
				t.Fatalf("exit %d %q, want %d %q\n%s", code, end.Message, c.code, c.reason, f.stderr)
			}
		})
	}
}

func TestEarlyCrashRestarts(t *testing.T) {
	f := newFixture(t, testSpec(), "", "")
	t.Setenv(fakeScript, "abort-once "+filepath.Join(t.TempDir(), "crashed")+"; say hello; "+handover+"; event SHUTDOWN guest-shutdown; exit 0")
	code, evs := f.run(t)
	if code != ExitPoweredOff {
		t.Fatalf("exit %d\n%s", code, f.stderr)
	}
	if !hasPhase(evs, events.PhaseWarning, "QEMU crashed early in the boot, before the guest ran anything (QEMU was killed by SIGABRT): starting the VM again") {
		t.Errorf("no restart warning: %+v", evs)
	}
	if !hasPhase(evs, events.PhaseSystemd, "taken over") || !hasPhase(evs, events.PhaseBooting, "kernel is running") {
		t.Errorf("steps missing: %+v", evs)
	}
}

func TestKVMFallback(t *testing.T) {
	sp := testSpec()
	sp.Accel = spec.AccelAuto
	f := newFixture(t, sp, handover+"; event SHUTDOWN guest-shutdown; exit 0", "hang")
	f.o.KVMUsable = func(string) error { return nil }
	code, evs := f.run(t)
	if code != ExitPoweredOff {
		t.Fatalf("exit %d\n%s", code, f.stderr)
	}
	var kernels []string
	for _, e := range evs {
		if e.Phase == events.PhaseKernel {
			kernels = append(kernels, e.Message)
		}
	}
	if len(kernels) != 2 || !strings.Contains(kernels[0], "kvm") || !strings.Contains(kernels[1], "tcg") {
		t.Errorf("kernel events %q", kernels)
	}
	found := false
	for _, e := range evs {
		if e.Code == events.CodeKVMUnusable && strings.Contains(e.Message, "vCPUs made no progress") {
			found = true
		}
	}
	if !found {
		t.Errorf("no kvm-unusable warning: %+v", evs)
	}
}

func TestKVMInternalError(t *testing.T) {
	sp := testSpec()
	sp.Accel = spec.AccelAuto
	sp.AccelProbeTimeout = spec.Duration(time.Minute)
	f := newFixture(t, sp, "event SHUTDOWN guest-shutdown; exit 0", "event STOP; hang")
	f.o.KVMUsable = func(string) error { return nil }
	code, evs := f.run(t)
	if code != ExitPoweredOff || !hasPhase(evs, events.PhaseWarning, "QEMU reports internal-error") {
		t.Fatalf("exit %d %+v\n%s", code, evs, f.stderr)
	}
}

func TestSignalPowersOff(t *testing.T) {
	for _, c := range []struct {
		name, script string
		timeout      time.Duration
		code         int
		reason       string
	}{
		{"obeys", handover + "; await-powerdown; await-powerdown; event SHUTDOWN guest-shutdown; exit 0", time.Minute, ExitPoweredOff, "the guest powered off on request"},
		{"ignores", handover + "; hang", 300 * time.Millisecond, ExitKilled, "the guest did not power off in time and was killed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sp := testSpec()
			sp.ShutdownTimeout = spec.Duration(c.timeout)
			f := newFixture(t, sp, c.script, "")
			go func() {
				// Once the guest has handed over, ask it to stop.
				for range 500 {
					evs, _ := events.ReadAll(filepath.Join(f.o.StateDir, spec.EventsFile))
					if hasPhase(evs, events.PhaseSystemd, "") {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			}()
			code, evs := f.run(t)
			if end := endEvent(t, evs); code != c.code || end.Message != c.reason {
				t.Fatalf("exit %d %q\n%s", code, end.Message, f.stderr)
			}
		})
	}
}

func TestVirtiofsdDies(t *testing.T) {
	f := newFixture(t, testSpec(), handover+"; hang", "")
	go func() {
		for range 500 {
			evs, _ := events.ReadAll(filepath.Join(f.o.StateDir, spec.EventsFile))
			if hasPhase(evs, events.PhaseSystemd, "") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		killChild(t, "--socket-path=")
	}()
	code, evs := f.run(t)
	if end := endEvent(t, evs); code != ExitHelper || !strings.Contains(end.Message, "virtiofsd was killed by SIGKILL, so the VM was stopped") {
		t.Fatalf("exit %d %q\n%s", code, end.Message, f.stderr)
	}
}

// killChild kills our child whose command line holds arg.
func killChild(t *testing.T, arg string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(arg)) {
			continue
		}
		st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		fields := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(os.Getpid()) {
			pid, _ := strconv.Atoi(e.Name())
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return
		}
	}
	t.Error("no child with " + arg)
}
