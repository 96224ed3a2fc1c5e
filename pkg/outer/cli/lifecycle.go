package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bcvk/bcvk/pkg/consolelog"
	"github.com/bcvk/bcvk/pkg/outer/ephemeral"
	"github.com/bcvk/bcvk/pkg/outer/vm"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/version"
	"github.com/spf13/cobra"
)

// runFlags are `ephemeral run`'s own flags on top of the VM flags.
type runFlags struct {
	vmFlags
	detach  bool
	remove  bool
	console bool
	labels  []string
	execute string
}

func parseLabels(in []string) (map[string]string, error) {
	out := map[string]string{}
	for _, l := range in {
		k, v, ok := strings.Cut(l, "=")
		switch {
		case !ok || k == "":
			return nil, usageError{fmt.Errorf("--label %q: use KEY=VALUE", l)}
		case strings.HasPrefix(k, "bcvk."):
			return nil, usageError{fmt.Errorf("--label %q: keys starting with bcvk. are bcvk's own", l)}
		case strings.ContainsAny(k, " \t\n"):
			return nil, usageError{fmt.Errorf("--label %q: a key cannot contain white space", l)}
		}
		out[k] = v
	}
	return out, nil
}

func newRunCommand(g *globals, st Streams) *cobra.Command {
	var f runFlags
	c := &cobra.Command{
		Use:     "run IMAGE",
		Aliases: []string{},
		Short:   "Boot IMAGE as an ephemeral VM",
		Long: `Boot IMAGE as an ephemeral VM. In the foreground (the default) bcvk waits until
the VM answers SSH, says how to reach it, and stays until the VM ends; Ctrl-C
asks the guest to power off. With -d it prints the VM's name once the VM is up
and returns. The VM's root is writable but nothing is written to the image.`,
		Example: `  bcvk ephemeral run -d --name dev localhost/bcvk-sample:latest
  bcvk ephemeral ssh dev -- systemctl status
  bcvk ephemeral rm -f dev

  # a web server in the guest on the host's port 8080, a scratch disk, swap
  bcvk ephemeral run -d --name web -p 8080:80 --mount-disk-file ./scratch.qcow2:scratch \
      --add-swap 1G --itype u1.medium localhost/bcvk-sample:latest
  bcvk ephemeral wait web && curl http://127.0.0.1:8080/
  bcvk ephemeral run --itype help

  # cloud-init user-data from ./seed (user-data, meta-data) for an image with cloud-init
  bcvk ephemeral run -d --name ci --cloud-init ./seed localhost/my-cloud-init-image

  # the guest's journal as plain lines on the host while it runs
  bcvk ephemeral run -d --name dev --journal ./dev-journal.log localhost/bcvk-sample:latest
  bcvk ephemeral logs --journal -f dev`,
		Args: unlessItypeHelp(&f.itype, exactArgs(1, "IMAGE")),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.itypeHelp(st.Out) {
				return nil
			}
			sp, err := f.spec()
			if err != nil {
				return err
			}
			labels, err := parseLabels(f.labels)
			if err != nil {
				return err
			}
			if f.detach && f.console {
				return usageError{errors.New("--console needs the foreground: leave out -d, or use `bcvk ephemeral logs -f NAME`")}
			}
			if f.execute != "" && (f.detach || f.console) {
				return usageError{errors.New("--execute runs in the foreground and removes the VM: leave out -d and --console")}
			}
			ctx := cmd.Context()
			rt, err := newRuntime()
			if err != nil {
				return err
			}
			// What killed bcvks left goes first: its name may be free then.
			vm.Report(rt.Prune(ctx))
			if sp.Name != "" {
				if _, err := rt.Find(ctx, sp.Name); err == nil {
					return fmt.Errorf("a VM named %q exists already: choose another --name or remove it (bcvk ephemeral rm -f %s)", sp.Name, sp.Name)
				}
			}
			_ = rt.PruneStateDirs(ctx)
			o := ephemeral.Options{
				Config: vm.Config{
					Image: args[0], Spec: sp, RunnerImage: g.runnerImage, Version: version.Version,
					Labels: labels, Warm: f.warm, HostStorage: f.storage,
				},
				ReadyTimeout: f.readyTimeout, Progress: g.progressMode(st.Err), Pull: f.pullOpts(), Pruned: true,
			}
			if f.execute != "" {
				// Boot, run the command over SSH with its streams and exact
				// status, and remove the VM: run-ssh with a shell command.
				o.Command = []string{"/bin/sh", "-c", f.execute}
				return ephemeral.RunSSH(ctx, rt, o, st.vm())
			}
			o.Remove = f.remove
			return ephemeral.Run(ctx, rt, o, ephemeral.RunMode{Detach: f.detach, Console: f.console}, st.vm())
		},
	}
	f.register(c.Flags())
	fl := c.Flags()
	fl.BoolVarP(&f.detach, "detach", "d", false, "return once the VM is up, printing its name")
	fl.BoolVar(&f.remove, "rm", false, "remove the VM when it ends")
	fl.BoolVar(&f.console, "console", false, "show the guest's serial console on stdout")
	fl.StringArrayVar(&f.labels, "label", nil, "set a label KEY=VALUE on the VM's container (repeatable)")
	fl.StringVar(&f.execute, "execute", "", "run this shell command once the VM is up, show its output, remove the VM and exit with the command's status")
	return c
}

// findVM finds the named VM; it removes nothing (a VM left by a killed
// bcvk can still be looked at, and is removed by rm).
func findVM(ctx context.Context, name string) (*vm.Runtime, *vm.VM, error) {
	rt, err := newRuntime()
	if err != nil {
		return nil, nil, err
	}
	v, err := rt.Find(ctx, name)
	return rt, v, err
}

// exactArgs wants n arguments; names says which, for the error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return argCount(func(got int) bool { return got == n }, names)
}

// minArgs wants at least n arguments.
func minArgs(n int, names string) cobra.PositionalArgs {
	return argCount(func(got int) bool { return got >= n }, names)
}

func argCount(ok func(int) bool, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if !ok(len(args)) {
			return usageError{fmt.Errorf("%s needs %s\nSee '%s --help'.", cmd.Name(), names, cmd.CommandPath())}
		}
		return nil
	}
}

func newSSHCommand(g *globals, st Streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "ssh NAME [SSH-OPTIONS...] [-- COMMAND [ARG...]]",
		Short: "Run a command (or a shell) in a running ephemeral VM over SSH",
		Long: `Connect to a running ephemeral VM over SSH. Options before "--" go to ssh
(for example -v, -L 8080:localhost:80); the command and its arguments come after
"--". Waits until the VM answers SSH; exits with the command's status.`,
		Example: `  bcvk ephemeral ssh dev
  bcvk ephemeral ssh dev -v -- uname -a
  bcvk ephemeral ssh dev -L 8080:localhost:80`,
		// ssh's own options are not ours to parse.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Flag parsing is off (ssh options pass through), so bcvk's
			// global flags given before the command arrive here too.
			args, err := takeGlobals(cmd, args)
			if err != nil {
				return err
			}
			if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
				if len(args) == 0 {
					return usageError{fmt.Errorf("ssh needs the NAME of a VM\nSee '%s --help'.", cmd.CommandPath())}
				}
				return cmd.Help()
			}
			name, rest := args[0], args[1:]
			var opts, command []string
			for i, a := range rest {
				if a == "--" {
					command = rest[i+1:]
					break
				}
				opts = append(opts, a)
			}
			if len(command) == 0 && len(opts) > 0 && !strings.HasPrefix(opts[len(opts)-1], "-") && !takesValue(opts) {
				return usageError{fmt.Errorf("put the command after \"--\": bcvk ephemeral ssh %s [SSH-OPTIONS] -- COMMAND", name)}
			}
			ctx := cmd.Context()
			rt, v, user, err := readyVM(ctx, g, st, name)
			if err != nil {
				return err
			}
			stopWarnings := vm.WatchWarnings(v.StateDir)
			defer stopWarnings()
			return rt.ExecSSH(ctx, name, user, opts, command, st.vm())
		},
	}
	return c
}

// takesValue reports whether the last ssh option expects a value, as in
// "-L 8080:localhost:80", so that the value is not taken for a command.
func takesValue(opts []string) bool {
	if len(opts) < 2 {
		return false
	}
	prev := opts[len(opts)-2]
	return len(prev) == 2 && prev[0] == '-' && strings.ContainsRune("BbcDEeFIiJLlmOoPpRSWw", rune(prev[1]))
}

func newPsCommand(g *globals, st Streams) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "ps",
		Short: "List ephemeral VMs",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rt, err := newRuntime()
			if err != nil {
				return err
			}
			// Listing changes nothing: VMs of a killed bcvk are shown, and
			// removed by the next run, rm or rm-all.
			vms, err := rt.List(ctx)
			if err != nil {
				return err
			}
			for _, v := range vms {
				if v.Orphaned {
					fmt.Fprintf(st.Err, "bcvk: VM %s was left by a bcvk that was killed (pid %s): `bcvk ephemeral rm %s` removes it, as does the next `bcvk ephemeral run`\n", v.Name, v.OwnerPID(), v.Name)
				}
			}
			if asJSON {
				return writeJSON(st.Out, vms)
			}
			tw := tabwriter.NewWriter(st.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tIMAGE\tSTATE\tSSH\tCREATED\tPORTS")
			for _, vm := range vms {
				ssh := "-"
				if vm.Ready {
					ssh = "ready"
				} else if vm.State == "running" {
					ssh = "booting"
				}
				state := vm.State
				switch {
				case vm.OwnerUnknown:
					// Its owner label cannot be judged, so bcvk leaves it.
					state += " (unknown owner)"
				case vm.Orphaned:
					state += " (orphaned)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", vm.Name, vm.Image, state, ssh, ago(vm.Created), portsColumn(vm.Ports))
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// portsColumn shows published ports as podman ps does: IP:HOST->GUEST/tcp.
func portsColumn(ps []spec.Publish) string {
	if len(ps) == 0 {
		return "-"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort)) + "->" + strconv.Itoa(p.GuestPort) + "/" + p.Protocol
	}
	return strings.Join(s, ", ")
}

func ago(t time.Time) string {
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Format("2006-01-02")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newRmCommand(g *globals, st Streams) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "rm NAME...",
		Short: "Remove ephemeral VMs (running ones with -f)",
		Args:  minArgs(1, "the NAME of at least one VM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rt, err := newRuntime()
			if err != nil {
				return err
			}
			pruned, err := rt.Prune(ctx)
			vm.Report(pruned, err)
			// A named VM that Prune removed is removed.
			gone := map[string]bool{}
			for _, p := range pruned.VMs {
				gone[p.Name] = true
			}
			rest := slices.DeleteFunc(slices.Clone(args), func(n string) bool { return gone[n] })
			if err := rt.Remove(ctx, rest, force); err != nil {
				return err
			}
			for _, n := range args {
				fmt.Fprintln(st.Out, n)
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "stop running VMs, and ignore VMs that do not exist")
	return c
}

func newRmAllCommand(g *globals, st Streams) *cobra.Command {
	var force, warmCache, erofsCache bool
	c := &cobra.Command{
		Use:   "rm-all",
		Short: "Remove every ephemeral VM (asks first unless -f)",
		Example: `  bcvk ephemeral rm-all -f
  bcvk ephemeral rm-all -f --warm-cache   # also drop the VMs saved for --warm`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if warmCache {
				n, err := vm.CurrentHost().RemoveWarmCache()
				if err != nil {
					return err
				}
				fmt.Fprintf(st.Err, "Removed %d saved VM(s) of the warm-start cache\n", n)
			}
			if erofsCache {
				n, err := vm.CurrentHost().RemoveErofsCache()
				if err != nil {
					return err
				}
				fmt.Fprintf(st.Err, "Removed %d cached EROFS image(s)\n", n)
			}
			rt, err := newRuntime()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			vm.Report(rt.Prune(ctx))
			if !force {
				vms, err := rt.List(ctx)
				if err != nil {
					return err
				}
				if len(vms) == 0 {
					return rt.PruneStateDirs(ctx)
				}
				names := make([]string, len(vms))
				for i, vm := range vms {
					names[i] = vm.Name
				}
				fmt.Fprintf(st.Err, "Remove %d VM(s): %s? [y/N] ", len(vms), strings.Join(names, ", "))
				line, _ := bufio.NewReader(st.In).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
					return errors.New("nothing removed (answer y, or use -f)")
				}
			}
			removed, err := rt.RemoveAll(ctx)
			for _, n := range removed {
				fmt.Fprintln(st.Out, n)
			}
			return err
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "do not ask")
	c.Flags().BoolVar(&warmCache, "warm-cache", false, "also remove every VM saved for warm starts (--warm)")
	c.Flags().BoolVar(&erofsCache, "erofs-cache", false, "also remove the cached EROFS images of image roots (rebuilt on next use)")
	return c
}

func newLogsCommand(g *globals, st Streams) *cobra.Command {
	var follow, journal bool
	c := &cobra.Command{
		Use:   "logs NAME",
		Short: "Show an ephemeral VM's serial console, or with --journal its journal",
		Args:  exactArgs(1, "the NAME of a VM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rt, v, err := findVM(ctx, args[0])
			if err != nil {
				return err
			}
			path := filepath.Join(v.StateDir, spec.ConsoleFile)
			if journal {
				path = filepath.Join(v.StateDir, spec.JournalFile)
			}
			stop := make(chan struct{})
			if !follow || v.State != "running" {
				close(stop)
			} else {
				go func() {
					_, _ = rt.Podman.Wait(ctx, v.ID)
					close(stop)
				}()
			}
			if err := vm.Follow(ctx, path, st.Out, stop); err != nil {
				return err
			}
			if journal {
				if hint := noJournalHint(v.StateDir); hint != "" {
					fmt.Fprintln(st.Err, hint)
				}
			}
			// bcvk-inner's own warnings (not the guest's console) go to
			// stderr, after the console.
			for _, w := range vm.Warnings(v.StateDir) {
				fmt.Fprintf(st.Err, "bcvk warning: %s\n", consolelog.Clean(w))
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the VM ends")
	c.Flags().BoolVar(&journal, "journal", false, "show the guest's journal (plain lines, forwarded by its journald over vsock; systemd 256 and later) instead of the console; for VMs started with --journal FILE")
	return c
}

func newSSHConfigCommand(g *globals, st Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "ssh-config NAME",
		Short: "Print an ssh_config entry for a VM, for ssh, scp, rsync and ansible",
		Long: `Print an ssh_config(5) entry for a running VM. The connection goes through
podman exec into the VM's container, so nothing listens on a host port.`,
		Example: `  bcvk ephemeral ssh-config dev > dev.sshconfig
  ssh -F dev.sshconfig dev uname -a
  scp -F dev.sshconfig file.txt dev:/tmp/
  rsync -e 'ssh -F dev.sshconfig' -a dir/ dev:/srv/`,
		Args: exactArgs(1, "the NAME of a VM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, v, err := findVM(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			user, err := v.SSHUser()
			if err != nil {
				return err
			}
			conf, err := vm.SSHConfig(rt.Podman.Path(), v.Name, user, v.StateDir)
			if err != nil {
				return err
			}
			fmt.Fprint(st.Out, conf)
			return nil
		},
	}
}

// takeGlobals applies bcvk's global flags at the front of args (as in
// `bcvk -q ephemeral ssh NAME`) and returns the rest.
func takeGlobals(cmd *cobra.Command, args []string) ([]string, error) {
	for len(args) > 0 {
		a := args[0]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case a == "-q" || a == "--quiet":
			_ = cmd.Root().PersistentFlags().Set("quiet", "true")
		case strings.HasPrefix(a, "--") && (name == "log-level" || name == "runner-image"):
			if !hasValue {
				if len(args) < 2 {
					return nil, usageError{fmt.Errorf("%s needs a value", a)}
				}
				value, args = args[1], args[1:]
			}
			if err := cmd.Root().PersistentFlags().Set(name, value); err != nil {
				return nil, usageError{err}
			}
		default:
			return args, cmd.Root().PersistentPreRunE(cmd, nil)
		}
		args = args[1:]
	}
	return args, cmd.Root().PersistentPreRunE(cmd, nil)
}
