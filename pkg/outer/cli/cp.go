package cli

import (
	"context"
	"fmt"

	"github.com/bcvk/bcvk/pkg/outer/ephemeral"
	"github.com/bcvk/bcvk/pkg/outer/progress"
	"github.com/bcvk/bcvk/pkg/outer/vm"
	"github.com/spf13/cobra"
)

func newCpCommand(g *globals, st Streams) *cobra.Command {
	var recursive bool
	c := &cobra.Command{
		Use:   "cp [-r] SRC DEST",
		Short: "Copy files and directories between the host and a running ephemeral VM",
		Long: `Copy a file, or a directory with -r, between the host and a running ephemeral
VM, in either direction. One side is NAME:PATH, a path in the VM named NAME; the
other is a host path (write a host path with a ':' as ./a:b). A guest PATH is
absolute, or relative to the SSH login user's home.

As with cp: when DEST is a directory, SRC goes into it under its own name;
otherwise SRC is copied as DEST, whose directory must exist. A file replaces a
file; directories are not merged. Permission bits and modification times are
kept; the copies belong to the user who receives them (root in the guest
unless the VM has --ssh-user). Symbolic links inside a directory are copied as
links; a SRC that is a link is followed.

The copy is a tar stream over the VM's SSH connection: the guest needs tar,
mktemp and readlink (GNU or busybox). What comes from the guest is treated as
untrusted: nothing lands outside DEST, no link is followed, only files,
directories and links are made, and setuid/setgid bits are dropped. A copy is
made beside DEST and renamed into place, so a failed copy leaves nothing.`,
		Example: `  bcvk ephemeral cp ./app.conf dev:/etc/app.conf
  bcvk ephemeral cp -r ./site dev:/srv/
  bcvk ephemeral cp -r dev:/var/log/journal ./journal-copy
  bcvk ephemeral cp dev:notes.txt .          # from the login user's home`,
		Args: exactArgs(2, "SRC and DEST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := ephemeral.ParseCopy(args[0], args[1], recursive)
			if err != nil {
				return usageError{fmt.Errorf("%w\nSee '%s --help'.", err, cmd.CommandPath())}
			}
			ctx := cmd.Context()
			rt, _, user, err := readyVM(ctx, g, st, o.VM())
			if err != nil {
				return err
			}
			guest := func(ctx context.Context, words []string, s vm.Streams) error {
				return rt.ExecSSH(ctx, o.VM(), user, nil, words, s)
			}
			return ephemeral.Copy(ctx, guest, o, st.vm())
		},
	}
	c.Flags().BoolVarP(&recursive, "recursive", "r", false, "copy a directory and everything in it")
	return c
}

// readyVM finds the named VM, waits until it answers SSH, and returns the
// runtime and the user SSH logs in as.
func readyVM(ctx context.Context, g *globals, st Streams, name string) (*vm.Runtime, *vm.VM, string, error) {
	rt, v, err := findVM(ctx, name)
	if err != nil {
		return nil, nil, "", err
	}
	if v.State != "running" {
		return nil, nil, "", fmt.Errorf("VM %q is not running (its container is %s): start a new one with `bcvk ephemeral run`", name, v.State)
	}
	if !v.Ready {
		status := progress.New(st.Err, g.progressMode(st.Err))
		status.Start("Waiting for " + name)
		err := rt.WaitReady(ctx, name, v.StateDir, vm.DefaultReadyTimeout, status)
		status.End(err == nil)
		if err != nil {
			return nil, nil, "", err
		}
	}
	user, err := v.SSHUser()
	return rt, v, user, err
}
