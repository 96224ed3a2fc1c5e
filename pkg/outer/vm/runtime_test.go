package vm

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcvk/bcvk/pkg/command"
	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/outer/progress"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
)

// testRuntime is a runtime on a fake podman, with a private state base and
// no KVM.
func testRuntime(t *testing.T) (*Runtime, *fakePodman) {
	t.Helper()
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	h := CurrentHost()
	h.KVMDevice = filepath.Join(t.TempDir(), "no-kvm")
	pc := &fakePodman{images: runnerImages()}
	return New(pc, h), pc
}

func quiet() *progress.Status { return progress.New(io.Discard, progress.Quiet) }

func testSpec() spec.Spec {
	sp := spec.New()
	sp.Name = "vm1"
	sp.Accel = spec.AccelTCG
	return sp
}

// Launch makes a private state directory with the spec and a key, starts
// one labelled container, and registers both for removal; the cleanups
// remove them in reverse order.
func TestLaunchRegistersEverythingItMakes(t *testing.T) {
	rt, pc := testRuntime(t)
	img, err := rt.Preflight(t.Context(), "localhost/img:1", "localhost/runner:1", PullOptions{}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	var cl Cleanups
	l, err := rt.Launch(t.Context(), Config{
		Image: "localhost/img:1", Preflighted: img, Spec: testSpec(), RunnerImage: "localhost/runner:1",
		Version: "0.1.0", Owned: true,
	}, quiet(), &cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{spec.SpecFile, spec.SSHKeyFile} {
		if _, err := os.Stat(filepath.Join(l.StateDir, f)); err != nil {
			t.Errorf("state directory lacks %s: %v", f, err)
		}
	}
	c, ok := pc.find("vm1")
	if !ok {
		t.Fatal("no container")
	}
	if c.Labels[spec.LabelStateDir] != l.StateDir || c.Labels[spec.LabelRunnerID] != "runner-sha" ||
		!strings.HasPrefix(c.Labels[spec.LabelOwner], strings.Split(rt.Host.owner(true), "@")[0]+"@") {
		t.Errorf("labels %v", c.Labels)
	}
	// Our own VM, owner alive: Prune leaves it, List shows it.
	if p, err := rt.Prune(t.Context()); err != nil || len(p.VMs) > 0 {
		t.Fatalf("pruned a live VM: %+v %v", p, err)
	}
	if vms, err := rt.List(t.Context()); err != nil || len(vms) != 1 || vms[0].OwnerUnknown {
		t.Fatalf("listed %+v, %v", vms, err)
	}
	if err := cl.Finish(nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := pc.find("vm1"); ok {
		t.Error("the container outlived the cleanups")
	}
	if _, err := os.Stat(l.StateDir); !os.IsNotExist(err) {
		t.Errorf("the state directory outlived the cleanups: %v", err)
	}
	if got := pc.changes(); !slices.Equal(got, []string{"run localhost/runner:1", "rm vm1"}) {
		t.Errorf("podman calls %q", got)
	}
}

// podman 4.3's race on an image two containers mount at once costs one
// more `podman run`; any other failure, or the race twice, is the error.
func TestLaunchRetriesTheImageMountRace(t *testing.T) {
	race := errors.New(`command "/usr/bin/podman run ..." failed: exit status 126
Command Output: Error: runc: runc create failed: unable to start container process: error during container init: error mounting "/var/lib/containers/storage/overlay-containers/4c41/userdata/overlay/32/merge" to rootfs at "/bcvk/image": mount ...: no such file or directory: OCI runtime attempted to invoke a command that was not found`)
	other := errors.New(`command "/usr/bin/podman run ..." failed: exit status 125
Command Output: Error: something else: no such file or directory`)
	for _, c := range []struct {
		name  string
		errs  []error
		calls []string
		fails bool
	}{
		{"the race once", []error{race}, []string{"run localhost/runner:1", "rm vm1", "run localhost/runner:1", "rm vm1"}, false},
		{"the race twice", []error{race, race}, []string{"run localhost/runner:1", "rm vm1", "run localhost/runner:1", "rm vm1"}, true},
		{"another failure", []error{other}, []string{"run localhost/runner:1", "rm vm1"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rt, pc := testRuntime(t)
			img, err := rt.Preflight(t.Context(), "localhost/img:1", "localhost/runner:1", PullOptions{}, quiet())
			if err != nil {
				t.Fatal(err)
			}
			pc.runErrs = c.errs
			var cl Cleanups
			_, err = rt.Launch(t.Context(), Config{
				Image: "localhost/img:1", Preflighted: img, Spec: testSpec(), RunnerImage: "localhost/runner:1", Version: "0.1.0",
			}, quiet(), &cl)
			if (err != nil) != c.fails {
				t.Fatalf("err %v, want failure %v", err, c.fails)
			}
			if err := cl.Finish(nil); err != nil {
				t.Fatal(err)
			}
			if got := pc.changes(); !slices.Equal(got, c.calls) {
				t.Errorf("podman calls %q, want %q", got, c.calls)
			}
		})
	}
}

func TestLaunchNeedsPreflight(t *testing.T) {
	rt, pc := testRuntime(t)
	var cl Cleanups
	if _, err := rt.Launch(t.Context(), Config{Image: "localhost/img:1", Spec: testSpec(), RunnerImage: "localhost/runner:1"}, quiet(), &cl); err == nil {
		t.Fatal("launched without a checked image")
	}
	if len(pc.changes()) > 0 || len(cl) > 0 {
		t.Fatalf("made %q", pc.changes())
	}
}

func TestPreflight(t *testing.T) {
	rt, pc := testRuntime(t)
	ctx := t.Context()
	if _, err := rt.Preflight(ctx, "localhost/img:1", "localhost/other-runner:1", PullOptions{}, quiet()); err == nil || !strings.Contains(err.Error(), "make runner-image") {
		t.Errorf("missing runner: %v", err)
	}
	if _, err := rt.Preflight(ctx, "localhost/absent:1", "localhost/runner:1", PullOptions{Policy: PullNever}, quiet()); err == nil || !strings.Contains(err.Error(), "--pull=never") {
		t.Errorf("missing image, --pull=never: %v", err)
	}
	if len(pc.changes()) > 0 {
		t.Fatalf("podman calls %q", pc.changes())
	}
	if _, err := rt.Preflight(ctx, "localhost/img:1", "localhost/runner:1", PullOptions{Policy: PullAlways}, quiet()); err != nil {
		t.Fatal(err)
	}
	if got := pc.changes(); !slices.Equal(got, []string{"pull localhost/img:1"}) {
		t.Errorf("podman calls %q", got)
	}
}

func writeEvents(t *testing.T, dir string, emit func(w *events.Writer)) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, spec.EventsFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	emit(events.NewWriter(f))
}

// WaitReady follows the events to SSH; a container that ends first, or a
// timeout, is an error that names the step.
func TestWaitReady(t *testing.T) {
	rt, pc := testRuntime(t)
	dir := t.TempDir()
	pc.containers = []podman.Container{{ID: "id-vm1", Names: []string{"vm1"}, State: "running"}}
	writeEvents(t, dir, func(w *events.Writer) {
		w.Emit(events.PhaseContainer, "")
		w.Emit(events.PhaseKernel, "6.12")
		w.Emit(events.PhaseSSH, "")
	})
	if err := rt.WaitReady(t.Context(), "vm1", dir, time.Minute, quiet()); err != nil {
		t.Fatal(err)
	}

	dir = t.TempDir()
	writeEvents(t, dir, func(w *events.Writer) { w.Emit(events.PhaseContainer, "") })
	err := rt.WaitReady(t.Context(), "vm1", dir, 200*time.Millisecond, quiet())
	if err == nil || !strings.Contains(err.Error(), `timed out after 200ms at step "Finding the kernel"`) {
		t.Errorf("timeout: %v", err)
	}

	pc.containers[0].State = "exited"
	pc.waitCode = 3
	writeEvents(t, dir, func(w *events.Writer) { w.Emit(events.PhaseError, "no kernel in the image") })
	err = rt.WaitReady(t.Context(), "vm1", dir, time.Minute, quiet())
	if err == nil || !strings.Contains(err.Error(), "the VM stopped before SSH was ready") || !strings.Contains(err.Error(), "no kernel in the image") {
		t.Errorf("exit: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	pc.containers[0].State = "running"
	if err := rt.WaitReady(ctx, "vm1", t.TempDir(), time.Minute, quiet()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// ExecSSH runs ssh through podman exec, with "--" before the destination,
// hides the command from errors, and turns a failed command into its
// status.
func TestExecSSH(t *testing.T) {
	rt, pc := testRuntime(t)
	var got podman.Attached
	pc.attach = func(a podman.Attached) error {
		got = a
		err := exec.Command("sh", "-c", "exit 42").Run()
		return &command.Error{Argv: a.Display, Inner: err}
	}
	err := rt.ExecSSH(t.Context(), "vm1", "root", []string{"-v"}, []string{"-oProxyCommand=x", "secret"}, Streams{In: strings.NewReader("")})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 42 {
		t.Fatalf("got %v", err)
	}
	if !slices.Equal(got.Args[:4], []string{"exec", "-i", "vm1", "ssh"}) || got.Foreground {
		t.Errorf("args %q, foreground %v", got.Args, got.Foreground)
	}
	dd := slices.Index(got.Args, "--")
	if dd < 0 || slices.Index(got.Args, "-v") > dd {
		t.Errorf("no \"--\" after the ssh options: %q", got.Args)
	}
	if last := got.Display[len(got.Display)-1]; last != "COMMAND" || slices.ContainsFunc(got.Display, func(s string) bool { return strings.Contains(s, "secret") }) {
		t.Errorf("errors would show %q", got.Display)
	}
}

// rm: a running VM needs -f, an unknown name is an error unless -f.
func TestRemove(t *testing.T) {
	rt, pc := testRuntime(t)
	pc.containers = []podman.Container{{ID: "id-vm1", Names: []string{"vm1"}, State: "running",
		Labels: map[string]string{spec.LabelEphemeral: "1", spec.LabelName: "vm1"}}}
	ctx := t.Context()
	if err := rt.Remove(ctx, []string{"vm1"}, false); err == nil || !strings.Contains(err.Error(), "is running") {
		t.Errorf("running without -f: %v", err)
	}
	if err := rt.Remove(ctx, []string{"nope"}, false); !errors.Is(err, ErrNoVM) {
		t.Errorf("unknown name: %v", err)
	}
	if err := rt.Remove(ctx, []string{"vm1", "nope"}, true); err != nil {
		t.Fatal(err)
	}
	if got := removals(pc.changes()); !slices.Equal(got, []string{"rm id-vm1"}) {
		t.Errorf("removed %q", got)
	}
}

// Report says what Prune removed, in the words users know; a podman that
// cannot list is left to the command's own listing, so it is said once.
func TestReport(t *testing.T) {
	var buf strings.Builder
	logrus.SetOutput(&buf)
	t.Cleanup(func() { logrus.SetOutput(os.Stderr) })
	Report(Pruned{VMs: []PrunedVM{{Name: "vm1", OwnerPID: "42"}}}, &listError{errors.New("podman ps: broken")})
	if got := buf.String(); !strings.Contains(got, "removed VM vm1: the bcvk that started it (pid 42) was killed before it could") || strings.Contains(got, "broken") {
		t.Fatalf("reported %q", got)
	}
	buf.Reset()
	Report(Pruned{}, errors.New("rm failed"))
	if got := buf.String(); !strings.Contains(got, "could not remove VMs left by a killed bcvk: rm failed") {
		t.Fatalf("reported %q", got)
	}
}

// A command whose VM ended under it exits 255 when bcvk-inner recorded why
// (ssh may have been killed with the container: podman exec says 137), and
// keeps the container's status when nothing was recorded.
func TestExplainLostVMStatus(t *testing.T) {
	rt, pc := testRuntime(t)
	pc.containers = []podman.Container{{ID: "c1", Names: []string{"vm1"}, State: "exited"}}
	pc.waitCode = 137
	for _, c := range []struct {
		reason string
		code   int
		want   string
	}{
		{"QEMU was killed by SIGKILL", 255, "the VM ended while the command ran: QEMU was killed by SIGKILL"},
		{"", 137, "the VM ended while the command ran: its container exited with status 137"},
	} {
		dir := t.TempDir()
		f, err := os.Create(filepath.Join(dir, spec.EventsFile))
		if err != nil {
			t.Fatal(err)
		}
		if c.reason != "" {
			events.NewWriter(f).Emit(events.PhaseExited, c.reason)
		}
		f.Close()
		err = rt.ExplainLostVM(context.Background(), "vm1", dir, &ExitError{Code: 137})
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != c.code || !strings.HasPrefix(ee.Message, c.want) {
			t.Errorf("reason %q: got %v (%+v); want status %d and %q", c.reason, err, ee, c.code, c.want)
		}
	}
}
