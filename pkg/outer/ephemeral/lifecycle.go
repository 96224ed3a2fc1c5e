package ephemeral

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/bcvk/bcvk/pkg/outer/progress"
	"github.com/bcvk/bcvk/pkg/outer/vm"
	"github.com/bcvk/bcvk/pkg/spec"
)

// RunMode says how `ephemeral run` stays with the VM.
type RunMode struct {
	Detach  bool // return once SSH answers
	Console bool // copy the serial console to stdout while in the foreground
}

// Run boots a VM that outlives the command (-d) or stays in the foreground
// until the VM ends. A VM that never becomes ready is removed.
func Run(ctx context.Context, rt *vm.Runtime, o Options, mode RunMode, st vm.Streams) (err error) {
	pc := rt.Podman
	status := progress.New(st.Err, o.Progress)
	var cl vm.Cleanups
	keep := false
	defer func() {
		status.End(err == nil)
		if !keep {
			err = cl.Finish(err)
		}
	}()
	v, err := launch(ctx, rt, o, status, &cl)
	if err != nil {
		return err
	}
	consoleDone := make(chan struct{})
	stopConsole := make(chan struct{})
	if mode.Console {
		status.End(true)
		status = progress.New(st.Err, progress.Quiet) // the console is the progress
		go func() {
			defer close(consoleDone)
			_ = vm.Follow(context.Background(), filepath.Join(v.StateDir, spec.ConsoleFile), st.Out, stopConsole)
		}()
	} else {
		close(consoleDone)
	}
	defer func() {
		select {
		case <-stopConsole:
		default:
			close(stopConsole)
		}
		<-consoleDone
	}()

	if err := rt.WaitReady(ctx, v.Name, v.StateDir, o.ReadyTimeout, status); err != nil {
		return v.Failed(err)
	}
	v.Ready()
	status.End(true)
	if mode.Detach {
		keep = true
		fmt.Fprintln(st.Out, v.Name)
		return nil
	}
	if !mode.Console {
		fmt.Fprintf(st.Err, "VM %s is up. Connect with: bcvk ephemeral ssh %s   (Ctrl-C powers it off)\n", v.Name, v.Name)
	}
	// From here on the VM is the user's: it stays after it ends (as a
	// stopped container with its console log) unless --rm.
	keep = !o.Remove
	exited := make(chan int, 1)
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		code, err := pc.Wait(wctx, v.Name)
		if err != nil {
			code = -1
		}
		exited <- code
	}()
	select {
	case code := <-exited:
		if code != 0 {
			return fmt.Errorf("the VM ended with status %d%s", code, vm.ConsoleTail(v.StateDir))
		}
		return nil
	case <-ctx.Done():
		// Ask the guest to power off; podman stop sends SIGTERM to
		// bcvk-inner, which does that, and kills after the stop timeout.
		sctx, scancel := context.WithTimeout(context.Background(), vm.CleanupTimeout)
		defer scancel()
		if err := pc.Stop(sctx, v.Name, vm.StopTimeoutFor(o.Spec)); err != nil {
			return err
		}
		return ctx.Err()
	}
}
