package ephemeral

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/command"
	"github.com/bcvk/bcvk/pkg/consolelog"
	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/outer/privdir"
	"github.com/bcvk/bcvk/pkg/outer/progress"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/sshclient"
	"github.com/bcvk/bcvk/pkg/sshkey"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Named timeouts.
const (
	// DefaultReadyTimeout bounds the wait for SSH; TCG on a loaded CI host
	// is slow, so it is generous.
	DefaultReadyTimeout = 5 * time.Minute
	eventPollInterval   = 50 * time.Millisecond
	podmanStartTimeout  = 2 * time.Minute
	cleanupTimeout      = 1 * time.Minute
	consoleTailLines    = 25
)

// Streams are the user's standard streams.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// ExitError ends bcvk with a status, and Message when there is more to
// say than the command's own output already said.
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Options for RunSSH.
type Options struct {
	Image        string
	Spec         spec.Spec
	ReadyTimeout time.Duration
	RunnerImage  string
	Version      string
	Command      []string
	Progress     progress.Mode
	Labels       map[string]string
	// Remove makes podman remove the container when the VM ends (--rm).
	Remove bool
	Pull   PullOptions
	// DisksDir is a host directory mounted for the spec's disks.
	DisksDir string
	// Warm restores a saved VM for these options, or saves one.
	Warm bool
	// Owned marks the container as removed by this process when it ends
	// (label bcvk.owner), so a later bcvk can remove it if this one is killed.
	Owned bool
	// Preflighted skips the checks of podman and the images when the caller
	// has just made them.
	Preflighted *podman.Image
}

// RunSSH boots Image, waits for SSH, runs Command (or a shell) and removes
// everything it made on every path. The error is an *ExitError carrying the
// command's status when the command ran.
func RunSSH(ctx context.Context, pc *podman.Client, o Options, st Streams) (err error) {
	status := progress.New(st.Err, o.Progress)
	var cl Cleanups
	defer func() {
		status.End(err == nil)
		err = cl.Finish(err)
	}()
	o.Owned = true
	vm, err := Launch(ctx, pc, o, status, &cl)
	if err != nil {
		return err
	}
	if err := WaitReady(ctx, pc, vm.Name, vm.StateDir, o.ReadyTimeout, status); err != nil {
		return vm.warm.failed(err)
	}
	vm.warm.finish()
	status.End(true)
	return ExplainLostVM(ctx, pc, vm.Name, vm.StateDir, ExecSSH(ctx, pc, vm.Name, nil, o.Command, st))
}

// lostVMWait bounds the wait for a container to end after ssh lost it.
const lostVMWait = 30 * time.Second

// ExplainLostVM adds to a failed command's status (ssh's 255: the
// connection was lost) a message that says how the VM ended, when it did.
func ExplainLostVM(ctx context.Context, pc *podman.Client, name, dir string, err error) error {
	var ee *ExitError
	if !errors.As(err, &ee) || ctx.Err() != nil {
		return err
	}
	if ee.Code != 255 {
		// Any other status is the command's own, unless the container is
		// gone (podman exec says 137 when its container was killed).
		if st, serr := pc.ContainerState(ctx, name); serr != nil || st == "running" {
			return err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, lostVMWait)
	defer cancel()
	code, werr := pc.Wait(wctx, name)
	if werr != nil {
		return err // still running, or unknown: ssh's own message stands
	}
	reason := EndReason(dir)
	if reason == "" {
		reason = fmt.Sprintf("its container exited with status %d", code)
	}
	return &ExitError{Code: ee.Code, Message: fmt.Sprintf("the VM ended while the command ran: %s%s", reason, consoleTail(dir))}
}

// EndReason is why the VM ended, as bcvk-inner recorded it.
func EndReason(dir string) string {
	evs, _ := events.ReadAll(filepath.Join(dir, spec.EventsFile))
	reason := ""
	for _, e := range evs {
		switch e.Phase {
		case events.PhaseError:
			reason = e.Message
		case events.PhaseExited:
			if reason == "" {
				reason = e.Message
			}
		}
	}
	return reason
}

// Launched is a VM whose container has been started.
type Launched struct {
	Name     string
	StateDir string
	warm     *warmPlan
}

// Launch checks the host and images, prepares the VM's state directory
// (spec and a fresh SSH key) and starts its container. What it creates is
// registered in cl, for the caller to keep or remove.
func Launch(ctx context.Context, pc *podman.Client, o Options, status *progress.Status, cl *Cleanups) (*Launched, error) {
	img := o.Preflighted
	if img == nil {
		status.Start("Checking podman and images")
		var err error
		if img, err = Preflight(ctx, pc, o.Image, o.RunnerImage, o.Pull, status); err != nil {
			return nil, err
		}
	}
	if err := PruneOrphans(ctx, pc); err != nil {
		logrus.Warnf("could not remove VMs left by a killed bcvk: %v", err)
	}
	sp := o.Spec
	if sp.Name == "" {
		sp.Name = RandomName()
	}
	ResolveAccel(&sp)
	var warm *warmPlan
	if o.Warm {
		var err error
		if warm, err = planWarm(ctx, pc, img, o, &sp, cl); err != nil {
			return nil, err
		}
	}
	if err := sp.Validate(); err != nil {
		return nil, err
	}
	dir, err := NewStateDir(sp.Name)
	if err != nil {
		return nil, err
	}
	cl.Add(func(context.Context) error { return os.RemoveAll(dir) })

	key, err := sshkey.Generate("bcvk-" + sp.Name)
	if err != nil {
		return nil, err
	}
	if err := key.Write(filepath.Join(dir, spec.SSHKeyFile)); err != nil {
		return nil, err
	}
	sp.SSHAuthorizedKey = key.Public
	if err := sp.Write(filepath.Join(dir, spec.SpecFile)); err != nil {
		return nil, err
	}

	noNet := false
	if os.Geteuid() != 0 && unix.Access("/dev/net/tun", unix.R_OK|unix.W_OK) != nil {
		noNet = true
		logrus.Warn("rootless podman cannot open /dev/net/tun (its mode here is not the usual 0666), so the VM's container gets no network: SSH works, but the guest cannot reach the outside. `chmod 0666 /dev/net/tun` as root fixes it.")
	}
	nofile, nproc := Rlimits()
	runner, err := pc.InspectImage(ctx, o.RunnerImage)
	if err != nil {
		return nil, fmt.Errorf("the runner image %q: %w", o.RunnerImage, err)
	}
	args, err := PodmanRunArgs(ContainerConfig{
		Name: sp.Name, Image: o.Image, ImageID: img.ID, RunnerImage: o.RunnerImage, RunnerImageID: runner.ID,
		StateDir: dir, MemoryMiB: sp.MemoryMiB, Version: o.Version, KVM: sp.Accel != spec.AccelTCG && hasKVM(),
		NoFile: nofile, NProc: nproc, StopTimeout: StopTimeoutFor(sp),
		Labels: o.Labels, Remove: o.Remove, Binds: sp.Binds, NoNetwork: noNet, DisksDir: o.DisksDir,
		Owner: owner(o.Owned), Warm: warm,
	})
	if err != nil {
		return nil, err
	}
	// Registered before the container exists: a signal during `podman run`
	// can leave it created, and removal by name is idempotent.
	cl.Add(func(ctx context.Context) error { return pc.Remove(ctx, sp.Name) })
	status.Start("Starting container " + sp.Name)
	// Not tied to ctx: killing podman half way through creating a container
	// leaves more behind than letting it finish and removing the result.
	rctx, cancel := context.WithTimeout(context.Background(), podmanStartTimeout)
	_, err = pc.Run(rctx, args)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("starting the VM container: %w", err)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return &Launched{Name: sp.Name, StateDir: dir, warm: warm}, nil
}

// Pull policies.
const (
	PullMissing = "missing"
	PullAlways  = "always"
	PullNever   = "never"
)

// PullOptions say when and how to pull the image.
type PullOptions struct {
	Policy string // missing (default), always or never
	// TLSVerify false is the explicit opt-out of TLS verification.
	TLSVerify bool
}

// Preflight checks podman, the image (pulling it as the policy says) and
// the runner image, and returns the image.
func Preflight(ctx context.Context, pc *podman.Client, image, runner string, pull PullOptions, status *progress.Status) (*podman.Image, error) {
	if _, err := pc.Version(ctx); err != nil {
		return nil, err
	}
	if pull.Policy == "" {
		pull.Policy = PullMissing
	}
	ok, err := pc.ImageExists(ctx, runner)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("the runner image %q is not in local container storage: build it with `make runner-image` in the bcvk source tree (or pass --runner-image)", runner)
	}
	img, err := pc.InspectImage(ctx, image)
	missing := errors.Is(err, podman.ErrNoImage)
	if err != nil && !missing {
		return nil, err
	}
	if pull.Policy == PullAlways || (missing && pull.Policy == PullMissing) {
		status.Start("Pulling " + image)
		if err := pc.Pull(ctx, image, pull.TLSVerify); err != nil {
			hint := ""
			if strings.Contains(err.Error(), "x509:") {
				hint = fmt.Sprintf("\nTo trust the registry, put its CA certificate in /etc/containers/certs.d/HOST:PORT/ca.crt (rootless: ~/.config/containers/certs.d/HOST:PORT/ca.crt); --tls-verify=false turns verification off")
			}
			return nil, fmt.Errorf("pulling %s: %w%s", image, err, hint)
		}
		if img, err = pc.InspectImage(ctx, image); err != nil {
			return nil, err
		}
	} else if missing {
		return nil, fmt.Errorf("image %q is not in local container storage and --pull=never: pull it (podman pull %s) or build it (for the sample image: make sample-image)", image, image)
	}
	if img.Labels[spec.BootcLabel] != "1" && img.Labels["ostree.bootable"] == "" {
		logrus.Warnf("image %q has no %s=1 label; it may not be a bootc image", image, spec.BootcLabel)
	}
	return img, nil
}

// WaitReady follows the VM's events until SSH answers, the container ends,
// the timeout passes or ctx ends, showing each step.
func WaitReady(ctx context.Context, pc *podman.Client, name, dir string, timeout time.Duration, status *progress.Status) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited := make(chan int, 1)
	go func() {
		code, err := pc.Wait(wctx, name)
		if err != nil && wctx.Err() != nil {
			return
		}
		exited <- code
	}()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(eventPollInterval)
	defer tick.Stop()
	r := events.NewReader(filepath.Join(dir, spec.EventsFile))
	step := "Starting container " + name
	var lastErr, endReason string
	handle := func() bool {
		evs, _ := r.Next()
		for _, e := range evs {
			switch e.Phase {
			case events.PhaseContainer:
				step = "Finding the kernel"
				status.Start(step)
			case events.PhaseKernel:
				step = "Booting the kernel (" + e.Message + ")"
				if strings.HasPrefix(e.Message, "restoring") {
					step = "Restoring the saved VM (" + strings.TrimPrefix(e.Message, "restoring a saved VM: ") + ")"
				}
				status.Start(step)
			case events.PhaseSystemd:
				step = "Starting systemd and sshd"
				status.Start(step)
			case events.PhaseWarning:
				status.End(true)
				logrus.Warn(e.Message)
				if e.Code == events.CodeKVMUnusable {
					RememberKVMUnusable(e.Message)
				}
			case events.PhaseError:
				lastErr = e.Message
			case events.PhaseExited:
				endReason = e.Message
			case events.PhaseSSH:
				return true
			}
		}
		return false
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			handle()
			return fmt.Errorf("timed out after %s at step %q: raise --timeout if the host is slow%s",
				timeout, step, consoleTail(dir))
		case code := <-exited:
			if handle() {
				return nil
			}
			msg := lastErr
			if msg == "" {
				msg = endReason
			}
			if msg == "" {
				msg = fmt.Sprintf("exit status %d; see podman logs", code)
			}
			return fmt.Errorf("the VM stopped before SSH was ready, at step %q: %s%s", step, msg, consoleTail(dir))
		case <-tick.C:
			if handle() {
				return nil
			}
		}
	}
}

func consoleTail(dir string) string {
	lines := consolelog.Tail(filepath.Join(dir, spec.ConsoleFile), consoleTailLines)
	if len(lines) == 0 {
		return ""
	}
	return "\nLast console lines:\n  " + strings.Join(lines, "\n  ")
}

// ExecSSH runs ssh in the VM's container with the user's extra ssh options
// and command, passing the streams through.
func ExecSSH(ctx context.Context, pc *podman.Client, name string, sshOpts, cmd []string, st Streams) error {
	interactive := len(cmd) == 0 && progress.IsTerminal(st.In) && progress.IsTerminal(st.Out)
	sshArgs := sshclient.Args(filepath.Join(spec.StateDir, spec.SSHKeyFile), spec.GuestSSHPort, sshOpts, "root", cmd)
	argv := append([]string{pc.Binary}, ExecSSHArgs(name, interactive, sshArgs)...)
	var display []string
	if len(cmd) > 0 {
		// The guest command is the user's and may hold secrets: errors
		// name it only at --log-level debug.
		display = append(append([]string(nil), argv[:len(argv)-1]...), "COMMAND")
	}
	err := command.Run(ctx, command.Cmd{
		Argv: argv, Display: display, Stdin: st.In, Stdout: st.Out, Stderr: st.Err,
		// A terminal session needs the foreground; otherwise bcvk handles
		// Ctrl-C itself and cleans up.
		NewProcessGroup: !interactive,
	})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if code := command.ExitCode(err); code > 0 {
		return &ExitError{Code: code}
	}
	return err
}

// RandomName returns a fresh VM name.
func RandomName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "bcvk-" + hex.EncodeToString(b)
}

// StateBase is the directory that holds every VM's state directory: in
// XDG_RUNTIME_DIR when there is one (private to the user, gone at logout),
// else a per-user directory in the temp dir. Every component is checked
// (see privdir): root with another user's XDG_RUNTIME_DIR (sudo -E) must
// not follow that user's symlinks.
func StateBase() (string, error) {
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			base, err := privdir.Ensure(d, "bcvk", 0o700)
			if err != nil {
				return "", fmt.Errorf("%w; bcvk looked there because of XDG_RUNTIME_DIR: unset it, or as root use sudo -i rather than sudo -E or su without -", err)
			}
			return base, nil
		}
	}
	base, err := privdir.Ensure(os.TempDir(), fmt.Sprintf("bcvk-%d", os.Geteuid()), 0o700)
	if err != nil {
		return "", fmt.Errorf("%w; or set XDG_RUNTIME_DIR to a private directory of yours", err)
	}
	return base, nil
}

// NewStateDir makes a private directory for one VM.
func NewStateDir(name string) (string, error) {
	base, err := StateBase()
	if err != nil {
		return "", fmt.Errorf("making the VM state directory: %w", err)
	}
	return os.MkdirTemp(base, name+"-")
}

// Rlimits returns the file and process limits to give the container: the
// host's hard file limit (virtiofsd needs many), and a process limit that
// runc can apply without CAP_SYS_RESOURCE.
func Rlimits() (nofile, nproc uint64) {
	nofile, nproc = 1024, 4096
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Max != unix.RLIM_INFINITY {
		nofile = rl.Max
	} else if rl.Max == unix.RLIM_INFINITY {
		nofile = 1 << 20
	}
	if unix.Getrlimit(unix.RLIMIT_NPROC, &rl) == nil && rl.Max < nproc {
		nproc = rl.Max
	}
	return nofile, nproc
}

// hasKVM reports whether this user may open /dev/kvm: passing a device the
// user cannot open only makes podman fail.
func hasKVM() bool {
	return unix.Access("/dev/kvm", unix.R_OK|unix.W_OK) == nil
}

// Cleanups are undo steps, run in reverse order.
type Cleanups []func(context.Context) error

func (c *Cleanups) Add(f func(context.Context) error) { *c = append(*c, f) }

// Finish runs the Cleanups with a context of their own (the caller's may be
// cancelled: that is often why we clean up) and adds their errors to err.
func (c Cleanups) Finish(err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if cerr := c.run(ctx); cerr != nil {
		return errors.Join(err, fmt.Errorf("cleaning up: %w", cerr))
	}
	return err
}

// run runs the Cleanups in reverse order and joins their errors.
func (c Cleanups) run(ctx context.Context) error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		if err := c[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
