package vm

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
	"github.com/bcvk/bcvk/pkg/outer/progress"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/sshclient"
	"github.com/bcvk/bcvk/pkg/sshkey"
	"github.com/sirupsen/logrus"
)

// Named timeouts.
const (
	// DefaultReadyTimeout bounds the wait for SSH; TCG on a loaded CI host
	// is slow, so it is generous.
	DefaultReadyTimeout = 5 * time.Minute
	eventPollInterval   = 50 * time.Millisecond
	podmanStartTimeout  = 2 * time.Minute
	// CleanupTimeout bounds cleanups and a stop, which run after the
	// caller's context may have ended.
	CleanupTimeout   = 1 * time.Minute
	consoleTailLines = 25
)

// Streams are the user's standard streams, passed through to commands run
// in the VM.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// Config is one VM to launch.
type Config struct {
	// Image is the user's reference; Preflighted is that image as
	// Preflight found it (what is mounted).
	Image       string
	Preflighted *podman.Image
	Spec        spec.Spec
	RunnerImage string
	Version     string
	Labels      map[string]string
	// Remove makes podman remove the container when the VM ends (--rm).
	Remove bool
	// DisksDir is a host directory mounted for the spec's disks.
	DisksDir string
	// Warm restores a saved VM for these options, or saves one.
	Warm bool
	// Owned marks the container as removed by this process when it ends
	// (label bcvk.owner), so a later bcvk can remove it if this one is killed.
	Owned bool
	// HostStorage shares the host's container storage read-only with the
	// guest (--bind-storage-ro; to-disk's installer).
	HostStorage bool
}

// lostVMWait bounds the wait for a container to end after ssh lost it.
const lostVMWait = 30 * time.Second

// ExplainLostVM adds to a failed command's status (ssh's 255: the
// connection was lost) a message that says how the VM ended, when it did.
func (r *Runtime) ExplainLostVM(ctx context.Context, name, dir string, err error) error {
	pc := r.Podman
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
	reason, status := EndReason(dir), ee.Code
	if reason == "" {
		reason = fmt.Sprintf("its container exited with status %d", code)
	} else {
		// bcvk-inner saw the VM end: the command lost its connection,
		// whether ssh noticed first (255) or was killed with the
		// container (podman exec's 137). One status for one event.
		status = 255
	}
	return &ExitError{Code: status, Message: fmt.Sprintf("the VM ended while the command ran: %s%s", reason, ConsoleTail(dir))}
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

// Ready is called once the VM answered SSH: a VM saved for warm starts
// (bcvk-inner saves it before it reports SSH) is kept under its key.
func (l *Launched) Ready() { l.warm.finish() }

// Failed is called with the error that ended the wait for a VM: a saved VM
// that could not be restored is dropped, and the error says so.
func (l *Launched) Failed(err error) error { return l.warm.failed(err) }

// Launch prepares the VM's state directory (spec and a fresh SSH key) and
// starts its container. c.Preflighted must come from Preflight. What it
// creates is registered in cl, for the caller to keep or remove.
func (r *Runtime) Launch(ctx context.Context, c Config, status *progress.Status, cl *Cleanups) (*Launched, error) {
	pc, h := r.Podman, r.Host
	img := c.Preflighted
	if img == nil {
		return nil, errors.New("vm: Launch needs the image that Preflight checked")
	}
	sp := c.Spec
	if sp.Name == "" {
		sp.Name = RandomName()
	}
	r.ResolveAccel(&sp)
	erofsDir, err := r.planErofs(img, &sp)
	if err != nil {
		return nil, err
	}
	var warm *warmPlan
	if c.Warm {
		if warm, err = r.planWarm(ctx, img, c, &sp, cl); err != nil {
			return nil, err
		}
		warm.erofsFile = erofsFile(erofsDir, sp.ImageID)
	}
	storageDir := ""
	if c.HostStorage {
		info, err := pc.Info(ctx)
		if err != nil {
			return nil, err
		}
		if info.Store.GraphRoot == "" {
			return nil, errors.New("podman info names no graph root, so bcvk cannot share the host's container storage")
		}
		storageDir = info.Store.GraphRoot
		sp.HostStorage = &spec.HostStorage{Driver: info.Store.GraphDriverName}
	}
	if err := sp.Validate(); err != nil {
		return nil, err
	}
	dir, err := h.NewStateDir(sp.Name)
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

	if sp.Journal != "" {
		// Made (or emptied) by the user running bcvk, so that it is theirs
		// and the mount has a file to bind.
		if err := createJournal(sp.Journal); err != nil {
			return nil, err
		}
	}

	noNet := sp.Network == spec.NetworkNone
	if !noNet && h.EUID != 0 && !usable(h.TunDevice) {
		noNet = true
		logrus.Warn("rootless podman cannot open /dev/net/tun (its mode here is not the usual 0666), so the VM's container gets no network: SSH works, but the guest cannot reach the outside. `chmod 0666 /dev/net/tun` as root fixes it.")
	}
	runner, err := pc.InspectImage(ctx, c.RunnerImage)
	if err != nil {
		return nil, fmt.Errorf("the runner image %q: %w", c.RunnerImage, err)
	}
	args, err := PodmanRunArgs(ContainerConfig{
		Name: sp.Name, Image: c.Image, ImageID: img.ID, RunnerImage: c.RunnerImage, RunnerImageID: runner.ID,
		StateDir: dir, MemoryMiB: sp.MemoryMiB, Version: c.Version, KVM: sp.Accel != spec.AccelTCG && usable(h.KVMDevice),
		VhostVsock: sp.SSHTransport != spec.TransportTCP && usable(h.VhostVsockDevice),
		NoFile:     h.NoFile, NProc: h.NProc, StopTimeout: StopTimeoutFor(sp),
		Labels: c.Labels, Remove: c.Remove, Binds: sp.Binds, NoNetwork: noNet, DisksDir: c.DisksDir,
		Owner: h.owner(c.Owned), Warm: warm, HostStorageDir: storageDir, SSHUser: sp.SSHUser,
		ErofsDir: erofsDir, Publish: sp.Publish, AttachedDisks: sp.AttachedDisks, JournalFile: sp.Journal,
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
	if err != nil && imageMountRaced(err) && ctx.Err() == nil {
		logrus.Warnf("podman could not mount the image into the VM's container (%s): trying once more", imageMountRaceWhat)
		_ = pc.Remove(rctx, sp.Name)
		_, err = pc.Run(rctx, args)
	}
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
func (r *Runtime) Preflight(ctx context.Context, image, runner string, pull PullOptions, status *progress.Status) (*podman.Image, error) {
	pc := r.Podman
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

// WaitReady's ends other than success, for callers that tell them apart.
var (
	ErrReadyTimeout     = errors.New("timed out")
	ErrEndedBeforeReady = errors.New("the VM stopped before SSH was ready")
)

// WaitReady follows the VM's events until SSH answers, the container ends,
// the timeout passes or ctx ends, showing each step.
func (r *Runtime) WaitReady(ctx context.Context, name, dir string, timeout time.Duration, status *progress.Status) error {
	pc := r.Podman
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
	er := events.NewReader(filepath.Join(dir, spec.EventsFile))
	step := "Starting container " + name
	var lastErr, endReason string
	handle := func() bool {
		evs, _ := er.Next()
		for _, e := range evs {
			switch e.Phase {
			case events.PhaseContainer:
				step = "Finding the kernel"
				status.Start(step)
			case events.PhaseRoot:
				step = e.Message
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
					r.Host.RememberKVMUnusable(e.Message)
				}
			case events.PhaseInfo:
				logrus.Debug(e.Message)
			case events.PhaseProgress:
				// The guest's systemd, over vsock: shown beside the step.
				status.Detail(consolelog.Clean(e.Message))
				logrus.Debug(e.Message)
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
			return fmt.Errorf("%w after %s at step %q: raise --timeout if the host is slow%s",
				ErrReadyTimeout, timeout, step, ConsoleTail(dir))
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
			return fmt.Errorf("%w, at step %q: %s%s", ErrEndedBeforeReady, step, msg, ConsoleTail(dir))
		case <-tick.C:
			if handle() {
				return nil
			}
		}
	}
}

// ConsoleTail is the VM's last console lines, to end an error message.
func ConsoleTail(dir string) string {
	lines := consolelog.Tail(filepath.Join(dir, spec.ConsoleFile), consoleTailLines)
	if len(lines) == 0 {
		return ""
	}
	return "\nLast console lines:\n  " + strings.Join(lines, "\n  ")
}

// ExecSSH runs ssh as user in the VM's container with the caller's extra ssh options
// and command, passing the streams through. A command that ran and failed
// is an *ExitError with its status.
func (r *Runtime) ExecSSH(ctx context.Context, name, user string, sshOpts, cmd []string, st Streams) error {
	interactive := len(cmd) == 0 && progress.IsTerminal(st.In) && progress.IsTerminal(st.Out)
	sshArgs := sshclient.Args(filepath.Join(spec.StateDir, spec.SSHKeyFile), sshclient.ProxyCommand, sshOpts, user, cmd)
	args := ExecSSHArgs(name, interactive, sshArgs)
	var display []string
	if len(cmd) > 0 {
		// The guest command is the user's and may hold secrets: errors
		// name it only at --log-level debug.
		display = append(append([]string(nil), args[:len(args)-1]...), "COMMAND")
	}
	err := r.Podman.Attach(ctx, podman.Attached{
		Args: args, Display: display, Stdin: st.In, Stdout: st.Out, Stderr: st.Err,
		// A terminal session needs the foreground; otherwise bcvk handles
		// Ctrl-C itself and cleans up.
		Foreground: interactive,
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

// Cleanups are undo steps, run in reverse order.
type Cleanups []func(context.Context) error

func (c *Cleanups) Add(f func(context.Context) error) { *c = append(*c, f) }

// Finish runs the Cleanups with a context of their own (the caller's may be
// cancelled: that is often why we clean up) and adds their errors to err.
func (c Cleanups) Finish(err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout)
	defer cancel()
	if cerr := c.run(ctx); cerr != nil {
		return errors.Join(err, &CleanupError{Err: cerr})
	}
	return err
}

// CleanupError says that something bcvk started may be left behind. It is
// reported even when a signal ended the command, unlike the cancellation
// it is joined with.
type CleanupError struct{ Err error }

func (e *CleanupError) Error() string { return "cleaning up: " + e.Err.Error() }
func (e *CleanupError) Unwrap() error { return e.Err }

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

// createJournal creates or empties the --journal file.
func createJournal(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("--journal: %w", err)
	}
	return f.Close()
}

// imageMountRaceWhat is podman 4.3's failure to mount an image that another
// container mounts or unmounts at that moment: runc finds the image's
// overlay directory gone ("error mounting .../merge to rootfs at
// "/bcvk/image" ... no such file or directory"). Seen once with two VMs of
// one image starting together; the container never started, so a second
// `podman run` loses nothing.
const imageMountRaceWhat = "another container of the same image was mounting it at the same moment"

func imageMountRaced(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, `to rootfs at "`+spec.ImageRoot+`"`) && strings.Contains(msg, "no such file or directory")
}
