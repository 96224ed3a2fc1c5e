// Package ephemeral is the ephemeral commands' work: boot a VM, run a
// command in it or stay with it, on top of the vm runtime.
package ephemeral

import (
	"context"
	"time"

	"github.com/bcvk/bcvk/pkg/outer/progress"
	"github.com/bcvk/bcvk/pkg/outer/vm"
)

// Options for RunSSH and Run.
type Options struct {
	vm.Config
	ReadyTimeout time.Duration
	Command      []string
	Progress     progress.Mode
	Pull         vm.PullOptions
	// Pruned says the caller has already pruned VMs left by a killed bcvk.
	Pruned bool
}

// launch checks podman and the images, prunes what killed bcvks left
// (and says so), and starts the VM.
func launch(ctx context.Context, rt *vm.Runtime, o Options, status *progress.Status, cl *vm.Cleanups) (*vm.Launched, error) {
	status.Start("Checking podman and images")
	img, err := rt.Preflight(ctx, o.Image, o.RunnerImage, o.Pull, status)
	if err != nil {
		return nil, err
	}
	if !o.Pruned {
		vm.Report(rt.Prune(ctx))
	}
	c := o.Config
	c.Preflighted = img
	return rt.Launch(ctx, c, status, cl)
}

// RunSSH boots Image, waits for SSH, runs Command (or a shell) and removes
// everything it made on every path. The error is a *vm.ExitError carrying
// the command's status when the command ran.
func RunSSH(ctx context.Context, rt *vm.Runtime, o Options, st vm.Streams) (err error) {
	status := progress.New(st.Err, o.Progress)
	var cl vm.Cleanups
	defer func() {
		status.End(err == nil)
		err = cl.Finish(err)
	}()
	o.Owned = true
	v, err := launch(ctx, rt, o, status, &cl)
	if err != nil {
		return err
	}
	if err := rt.WaitReady(ctx, v.Name, v.StateDir, o.ReadyTimeout, status); err != nil {
		return v.Failed(err)
	}
	v.Ready()
	status.End(true)
	stopWarnings := vm.WatchWarnings(v.StateDir)
	err = rt.ExecSSH(ctx, v.Name, o.Spec.LoginUser(), nil, o.Command, st)
	stopWarnings()
	return rt.ExplainLostVM(ctx, v.Name, v.StateDir, err)
}
