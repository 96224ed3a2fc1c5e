package ephemeral

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/outer/progress"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/sshclient"
)

// RunMode says how `ephemeral run` stays with the VM.
type RunMode struct {
	Detach  bool // return once SSH answers
	Console bool // copy the serial console to stdout while in the foreground
}

// Run boots a VM that outlives the command (-d) or stays in the foreground
// until the VM ends. A VM that never becomes ready is removed.
func Run(ctx context.Context, pc *podman.Client, o Options, mode RunMode, st Streams) (err error) {
	status := progress.New(st.Err, o.Progress)
	var cl Cleanups
	keep := false
	defer func() {
		status.End(err == nil)
		if !keep {
			err = cl.Finish(err)
		}
	}()
	vm, err := Launch(ctx, pc, o, status, &cl)
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
			_ = Follow(context.Background(), filepath.Join(vm.StateDir, spec.ConsoleFile), st.Out, stopConsole)
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

	if err := WaitReady(ctx, pc, vm.Name, vm.StateDir, o.ReadyTimeout, status); err != nil {
		return vm.warm.failed(err)
	}
	vm.warm.finish()
	status.End(true)
	if mode.Detach {
		keep = true
		fmt.Fprintln(st.Out, vm.Name)
		return nil
	}
	if !mode.Console {
		fmt.Fprintf(st.Err, "VM %s is up. Connect with: bcvk ephemeral ssh %s   (Ctrl-C powers it off)\n", vm.Name, vm.Name)
	}
	// From here on the VM is the user's: it stays after it ends (as a
	// stopped container with its console log) unless --rm.
	keep = !o.Remove
	exited := make(chan int, 1)
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		code, err := pc.Wait(wctx, vm.Name)
		if err != nil {
			code = -1
		}
		exited <- code
	}()
	select {
	case code := <-exited:
		if code != 0 {
			return fmt.Errorf("the VM ended with status %d%s", code, consoleTail(vm.StateDir))
		}
		return nil
	case <-ctx.Done():
		// Ask the guest to power off; podman stop sends SIGTERM to
		// bcvk-inner, which does that, and kills after the stop timeout.
		sctx, scancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer scancel()
		if err := pc.Stop(sctx, vm.Name, StopTimeoutFor(o.Spec)); err != nil {
			return err
		}
		return ctx.Err()
	}
}

// SSHConfig returns an ssh_config entry that reaches the VM through podman
// exec and bcvk-inner's proxy, with the VM's own key. Values are quoted for
// ssh_config: double quotes around words, "%" doubled (ssh expands tokens
// in IdentityFile and ProxyCommand); a path that cannot be written so is
// refused.
func SSHConfig(podmanBin, name, stateDir string) (string, error) {
	key := filepath.Join(stateDir, spec.SSHKeyFile)
	for _, v := range []string{podmanBin, name, key} {
		if strings.ContainsAny(v, "\"\\\n\r\x00") {
			return "", fmt.Errorf("%q cannot be written in an ssh_config file (it has a quote, backslash or line break)", v)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Host %s\n", sshConfigWord(name))
	fmt.Fprintf(&b, "  HostName %s\n", sshConfigWord(name))
	fmt.Fprintf(&b, "  User root\n")
	fmt.Fprintf(&b, "  IdentityFile %s\n", sshConfigWord(key))
	fmt.Fprintf(&b, "  IdentitiesOnly yes\n")
	// The guest's host key is new on every boot.
	fmt.Fprintf(&b, "  StrictHostKeyChecking no\n")
	fmt.Fprintf(&b, "  UserKnownHostsFile /dev/null\n")
	fmt.Fprintf(&b, "  LogLevel ERROR\n")
	// ssh hands the rest of the ProxyCommand line to a shell as it is.
	fmt.Fprintf(&b, "  ProxyCommand %s\n", strings.ReplaceAll(fmt.Sprintf("%s exec -i %s bcvk-inner proxy 127.0.0.1:%d",
		sshclient.Quote(podmanBin), sshclient.Quote(name), spec.GuestSSHPort), "%", "%%"))
	return b.String(), nil
}

// sshConfigWord quotes one ssh_config argument.
func sshConfigWord(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if s != "" && !strings.ContainsAny(s, " \t#=") {
		return s
	}
	return `"` + s + `"`
}
