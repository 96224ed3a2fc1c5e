// Package cli is bcvk's command tree.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/bcvk/bcvk/pkg/outer/config"
	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/outer/progress"
	"github.com/bcvk/bcvk/pkg/outer/vm"
	"github.com/bcvk/bcvk/pkg/version"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// Streams are where commands read and write: data on Out, progress and logs
// on Err.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// vm is the streams as the VM runtime passes them to a command in a VM.
func (st Streams) vm() vm.Streams { return vm.Streams{In: st.In, Out: st.Out, Err: st.Err} }

// ExitError ends bcvk with Code, and Message when there is more to say than
// the command's own output already said.
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

// exitStatus is the status that err asks bcvk to exit with: a command's
// own, or a command's in a VM.
func exitStatus(err error) (*ExitError, bool) {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee, true
	}
	var ve *vm.ExitError
	if errors.As(err, &ve) {
		return &ExitError{Code: ve.Code, Message: ve.Message}, true
	}
	return nil, false
}

// newRuntime finds podman and describes this host for the VM runtime.
func newRuntime() (*vm.Runtime, error) {
	pc, err := podman.New()
	if err != nil {
		return nil, err
	}
	return vm.New(pc, vm.CurrentHost()), nil
}

// globals are the flags every command has.
type globals struct {
	logLevel    string
	quiet       bool
	runnerImage string
	profile     string
	// getenv reads the environment (tests give their own).
	getenv func(string) string
}

func (g *globals) progressMode(w io.Writer) progress.Mode { return progress.ModeFor(w, g.quiet) }

// usageError marks errors in how bcvk was called (exit status 2).
type usageError struct{ error }

// NewRootCommand builds the command tree.
func NewRootCommand(st Streams) *cobra.Command { return newRootCommand(st, os.Getenv) }

// newRootCommand builds the command tree on an environment of getenv.
func newRootCommand(st Streams, getenv func(string) string) *cobra.Command {
	g := &globals{getenv: getenv}
	root := &cobra.Command{
		Use:           "bcvk",
		Short:         "bcvk boots bootc container images as virtual machines",
		Long:          "bcvk, the bootc virtualization kit, boots bootc container images as VMs in seconds, with nothing on the host but podman.",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			lvl, err := logrus.ParseLevel(g.logLevel)
			if err != nil {
				return usageError{fmt.Errorf("invalid --log-level %q: use debug, info, warning or error", g.logLevel)}
			}
			logrus.SetLevel(lvl)
			if g.quiet && lvl > logrus.ErrorLevel {
				logrus.SetLevel(logrus.ErrorLevel)
			}
			return g.applyConfig(cmd)
		},
	}
	root.SetVersionTemplate(versionTemplate)
	root.SetIn(st.In)
	root.SetOut(st.Out)
	root.SetErr(st.Err)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nSee '%s --help'.", err, c.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.logLevel, "log-level", "warning", "log level: debug, info, warning or error")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "show no progress, only errors")
	// The environment is the default here, so that it also reaches what
	// runs without PersistentPreRunE (--version); the configuration file
	// comes in PersistentPreRunE (applyConfig), below both.
	defRunner := version.RunnerImage()
	if v := getenv("BCVK_RUNNER_IMAGE"); v != "" {
		defRunner = v
	}
	pf.StringVar(&g.runnerImage, "runner-image", defRunner, "the runner image with QEMU and virtiofsd (env BCVK_RUNNER_IMAGE; runner-image in the configuration file)")
	pf.StringVar(&g.profile, "profile", "", "apply the settings of profile `NAME` in the configuration file (env "+config.ProfileEnv+"; bcvk config show lists them)")

	root.AddCommand(newEphemeralCommand(g, st), newImagesCommand(g, st),
		withConfig(newToDiskCommand(g, st), "runner-image"), newLibvirtCommand(g, st),
		withConfig(newSystemCommand(g, st), "runner-image"), newConfigCommand(g, st))
	// The project plan's names stay valid.
	runAlias := withConfig(newRunCommand(g, st), vmConfigKeys()...)
	runAlias.Use = strings.Replace(runAlias.Use, "run", "run-ephemeral", 1)
	runAlias.Short = "Alias of `bcvk ephemeral run`"
	sshAlias := newSSHCommand(g, st)
	sshAlias.Short = "Alias of `bcvk ephemeral ssh`"
	root.AddCommand(runAlias, sshAlias, newGenDocCommand(st))
	addVarlink(root, g, st)
	return root
}

// quietSignals marks a command that a signal ends in the normal course.
const quietSignals = "bcvk.quiet-signals"

// Main runs bcvk with args and returns the exit status. Only cmd/bcvk's main
// calls os.Exit.
func Main(args []string, st Streams) int {
	logrus.SetOutput(st.Err)
	logrus.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	// SIGHUP (the terminal went away) and SIGPIPE (whoever read our output
	// went away; Go would otherwise exit at the next write to stderr) end
	// bcvk like Ctrl-C: with its containers removed.
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	var got os.Signal
	gotSig := make(chan struct{})
	go func() {
		select {
		case got = <-sigs:
			close(gotSig)
			cancel()
		case <-ctx.Done():
		}
	}()

	root := NewRootCommand(st)
	root.SetArgs(args)
	ran, err := root.ExecuteContextC(ctx)
	select {
	case <-gotSig:
		if ran != nil && ran.Annotations[quietSignals] != "" {
			// ssh ends its ProxyCommand with SIGHUP: no news.
			return 128 + int(got.(syscall.Signal))
		}
		var ce *vm.CleanupError
		var kept *KeptError
		switch {
		case errors.As(err, &kept):
			fmt.Fprintf(st.Err, "bcvk: interrupted by %v; the VM %s was made and stays (`%s` removes it)\n", got, kept.Name, kept.How)
		case errors.As(err, &ce):
			fmt.Fprintf(st.Err, "Error: %v\n", strings.TrimSpace(ce.Error()))
			fmt.Fprintf(st.Err, "bcvk: interrupted by %v; some of what it started could not be removed (see above): `bcvk ephemeral rm-all` removes VMs left behind\n", got)
		case err != nil && !errors.Is(err, context.Canceled):
			if _, ok := exitStatus(err); !ok {
				fmt.Fprintf(st.Err, "Error: %v\n", err)
			}
			fallthrough
		default:
			fmt.Fprintf(st.Err, "bcvk: interrupted by %v; everything it started was removed\n", got)
		}
		return 128 + int(got.(syscall.Signal))
	default:
	}
	if err == nil {
		return 0
	}
	if ee, ok := exitStatus(err); ok {
		if ee.Message != "" {
			fmt.Fprintf(st.Err, "Error: %s\n", strings.TrimSpace(ee.Message))
		}
		return ee.Code
	}
	fmt.Fprintf(st.Err, "Error: %v\n", strings.TrimSpace(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
