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

	"github.com/bcvk/bcvk/pkg/outer/ephemeral"
	"github.com/bcvk/bcvk/pkg/outer/progress"
	"github.com/bcvk/bcvk/pkg/version"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// Streams are where commands read and write: data on Out, progress and logs
// on Err.
type Streams = ephemeral.Streams

// globals are the flags every command has.
type globals struct {
	logLevel    string
	quiet       bool
	runnerImage string
}

func (g *globals) progressMode(w io.Writer) progress.Mode { return progress.ModeFor(w, g.quiet) }

// usageError marks errors in how bcvk was called (exit status 2).
type usageError struct{ error }

// NewRootCommand builds the command tree.
func NewRootCommand(st Streams) *cobra.Command {
	g := &globals{}
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
			return nil
		},
	}
	root.SetIn(st.In)
	root.SetOut(st.Out)
	root.SetErr(st.Err)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nSee '%s --help'.", err, c.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.logLevel, "log-level", "warning", "log level: debug, info, warning or error")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "show no progress, only errors")
	defRunner := version.RunnerImage()
	if v := os.Getenv("BCVK_RUNNER_IMAGE"); v != "" {
		defRunner = v
	}
	pf.StringVar(&g.runnerImage, "runner-image", defRunner, "the runner image with QEMU and virtiofsd (env BCVK_RUNNER_IMAGE)")

	root.AddCommand(newEphemeralCommand(g, st), newImagesCommand(g, st), newToDiskCommand(g, st), newSystemCommand(g, st))
	// The project plan's names stay valid.
	runAlias := newRunCommand(g, st)
	runAlias.Use = strings.Replace(runAlias.Use, "run", "run-ephemeral", 1)
	runAlias.Short = "Alias of `bcvk ephemeral run`"
	sshAlias := newSSHCommand(g, st)
	sshAlias.Short = "Alias of `bcvk ephemeral ssh`"
	root.AddCommand(runAlias, sshAlias, newGenDocCommand(st))
	return root
}

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
	err := root.ExecuteContext(ctx)
	select {
	case <-gotSig:
		if err != nil {
			var ee *ephemeral.ExitError
			if !errors.As(err, &ee) && !errors.Is(err, context.Canceled) {
				fmt.Fprintf(st.Err, "Error: %v\n", err)
			}
		}
		fmt.Fprintf(st.Err, "bcvk: interrupted by %v; everything it started was removed\n", got)
		return 128 + int(got.(syscall.Signal))
	default:
	}
	if err == nil {
		return 0
	}
	var ee *ephemeral.ExitError
	if errors.As(err, &ee) {
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
