package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/bcvk/bcvk/pkg/outer/progress"
	"github.com/bcvk/bcvk/pkg/outer/vm"
	"github.com/spf13/cobra"
)

// Exit statuses of `bcvk ephemeral wait`.
const (
	waitReady    = 0
	waitGone     = 1
	waitTimedOut = 124 // as timeout(1)
)

func newWaitCommand(g *globals, st Streams) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "wait NAME",
		Short: "Wait until an ephemeral VM answers SSH",
		Long: `Wait until the VM NAME answers SSH, for scripts that start VMs with -d and
wait for them later. The exit status says how it ended: 0 the VM is ready,
1 there is no such VM or it ended before it was ready, 124 the timeout passed
first (the VM keeps booting).`,
		Example: `  bcvk ephemeral run -d --name a IMAGE & bcvk ephemeral run -d --name b IMAGE & wait
  bcvk ephemeral wait a && bcvk ephemeral wait --timeout 10m b`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout <= 0 {
				return usageError{errors.New("--timeout must be positive, e.g. 5m")}
			}
			ctx := cmd.Context()
			name := args[0]
			rt, v, err := findVM(ctx, name)
			if errors.Is(err, vm.ErrNoVM) {
				return &ExitError{Code: waitGone, Message: err.Error()}
			}
			if err != nil {
				return err
			}
			if v.State != "running" {
				return &ExitError{Code: waitGone, Message: fmt.Sprintf("VM %q is not running (its container is %s)", name, v.State)}
			}
			if v.Ready {
				return nil
			}
			status := progress.New(st.Err, g.progressMode(st.Err))
			status.Start("Waiting for " + name)
			err = rt.WaitReady(ctx, name, v.StateDir, timeout, status)
			status.End(err == nil)
			switch {
			case err == nil:
				return nil
			case errors.Is(err, vm.ErrReadyTimeout):
				return &ExitError{Code: waitTimedOut, Message: fmt.Sprintf("VM %q: %v", name, err)}
			case errors.Is(err, vm.ErrEndedBeforeReady):
				return &ExitError{Code: waitGone, Message: fmt.Sprintf("VM %q: %v", name, err)}
			}
			return err
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", vm.DefaultReadyTimeout, "how long to wait")
	return c
}
