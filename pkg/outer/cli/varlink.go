package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bcvk/bcvk/pkg/outer/images"
	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/outer/varlink"
	"github.com/bcvk/bcvk/pkg/outer/vm"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/version"
	"github.com/spf13/cobra"
)

// addVarlink adds `bcvk varlink`, and makes a bare `bcvk` that socket
// activation started (a systemd socket unit, `varlinkctl exec:bcvk`, as
// with the Rust bcvk) serve the API on the passed socket.
func addVarlink(root *cobra.Command, g *globals, st Streams) {
	root.AddCommand(newVarlinkCommand(g, st))
	if varlink.Requested() && root.RunE == nil {
		root.Annotations = map[string]string{quietSignals: "1"}
		root.RunE = func(cmd *cobra.Command, args []string) error {
			return serveVarlink(cmd.Context(), g, st, "")
		}
	}
}

func newVarlinkCommand(g *globals, st Streams) *cobra.Command {
	c := &cobra.Command{Use: "varlink", Short: "Serve bcvk's varlink API"}
	var address string
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve the varlink API on a unix socket, or on the socket that socket activation passed",
		Long: `Serve the varlink interfaces io.bootc.vk.images, io.bootc.vk.ephemeral and
io.bootc.vk.todisk (and org.varlink.service) until SIGTERM or SIGINT. With
--address, bcvk makes the socket and removes it on exit; without it, it
serves the socket that systemd passed (LISTEN_FDS, LISTEN_PID). Each call
runs the code of the matching command (images list, ephemeral ps,
ephemeral run -d, ephemeral ssh-config, to-disk); calls in progress are
cancelled on exit, and what they started is removed. See docs/varlink.md.`,
		Example: `  bcvk varlink serve --address unix:$XDG_RUNTIME_DIR/bcvk.sock &
  varlinkctl call unix:$XDG_RUNTIME_DIR/bcvk.sock io.bootc.vk.images.List '{}'
  varlinkctl call unix:$XDG_RUNTIME_DIR/bcvk.sock io.bootc.vk.ephemeral.Run \
      '{"image": "localhost/bcvk-sample:latest", "opts": {"name": "dev"}}'`,
		Args:        exactArgs(0, "no arguments"),
		Annotations: map[string]string{quietSignals: "1"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return serveVarlink(cmd.Context(), g, st, address)
		},
	}
	serve.Flags().StringVar(&address, "address", "", "listen on `unix:PATH` (default: the socket passed by socket activation)")
	c.AddCommand(serve)
	return c
}

// serveVarlink serves until ctx ends; the calls run as the commands would,
// with this bcvk's global flags.
func serveVarlink(ctx context.Context, g *globals, st Streams, address string) error {
	svc := varlink.NewBcvk(&varlinkBackend{g: *g, st: st}, version.Version)
	if address == "" {
		a, err := varlink.Activation()
		if errors.Is(err, varlink.ErrNotActivated) {
			return usageError{errors.New("give --address unix:PATH: no socket was passed by socket activation")}
		}
		if err != nil {
			return err
		}
		return a.Serve(ctx, svc)
	}
	l, err := varlink.Listen(address)
	if err != nil {
		return err
	}
	if !g.quiet {
		fmt.Fprintf(st.Err, "Serving the varlink API on %s (SIGTERM or Ctrl-C stops)\n", address)
	}
	return svc.Serve(ctx, l)
}

// varlinkBackend answers the calls with the commands' own code.
type varlinkBackend struct {
	g  globals
	st Streams
}

// command runs one of bcvk's commands in this process, quietly, with its
// data written to out: Run and ToDisk check and use their parameters
// exactly as `ephemeral run` and `to-disk` check and use their flags.
func (b *varlinkBackend) command(ctx context.Context, build func(*globals, Streams) *cobra.Command, args []string, out io.Writer) error {
	g := b.g
	g.quiet = true
	c := build(&g, Streams{In: strings.NewReader(""), Out: out, Err: b.st.Err})
	c.SetArgs(args)
	c.SetIn(strings.NewReader(""))
	c.SetOut(b.st.Err)
	c.SetErr(b.st.Err)
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.ExecuteContext(ctx)
	if err != nil {
		// A caller of the API has no --help to see.
		if msg, _, ok := strings.Cut(err.Error(), "\nSee '"); ok {
			return errors.New(msg)
		}
	}
	return err
}

func (b *varlinkBackend) List(ctx context.Context) (varlink.ListReply, error) {
	pc, err := podman.New()
	if err != nil {
		return varlink.ListReply{}, err
	}
	imgs, err := images.List(ctx, pc)
	if err != nil {
		return varlink.ListReply{}, err
	}
	return varlink.ListReply{Images: imageRefs(imgs)}, nil
}

// imageRefs are the images' references, each once; images without a name
// have none.
func imageRefs(imgs []images.Image) []string {
	refs := []string{}
	seen := map[string]bool{}
	for _, im := range imgs {
		var ref string
		switch {
		case im.Repository == "<none>":
			continue
		case im.Tag != "<none>":
			ref = im.Repository + ":" + im.Tag
		case im.Digest != "":
			ref = im.Repository + "@" + im.Digest
		default:
			continue
		}
		if !seen[ref] {
			seen[ref] = true
			refs = append(refs, ref)
		}
	}
	return refs
}

func (b *varlinkBackend) Ps(ctx context.Context) (varlink.PsReply, error) {
	rt, err := newRuntime()
	if err != nil {
		return varlink.PsReply{}, err
	}
	vms, err := rt.List(ctx) // listing changes nothing (see ps)
	if err != nil {
		return varlink.PsReply{}, err
	}
	ids := make([]string, len(vms))
	for i, v := range vms {
		ids[i] = v.ID
	}
	return varlink.PsReply{ContainerIDs: ids}, nil
}

func (b *varlinkBackend) Run(ctx context.Context, p varlink.RunParams) (varlink.RunReply, error) {
	args, err := runArgs(p)
	if err != nil {
		return varlink.RunReply{}, err
	}
	var out bytes.Buffer
	if err := b.command(ctx, newRunCommand, args, &out); err != nil {
		return varlink.RunReply{}, err
	}
	rt, err := newRuntime()
	if err != nil {
		return varlink.RunReply{}, err
	}
	v, err := rt.Find(ctx, strings.TrimSpace(out.String()))
	if err != nil {
		return varlink.RunReply{}, fmt.Errorf("the VM was started, but: %w", err)
	}
	return varlink.RunReply{ContainerID: v.ID}, nil
}

// runArgs are the `ephemeral run` arguments of a Run call. Values go as
// --flag=value and the image after "--", so none is taken for a flag.
func runArgs(p varlink.RunParams) ([]string, error) {
	args := []string{"--detach"}
	o := p.Opts
	if o == nil {
		o = &varlink.RunOpts{}
	}
	if len(o.Env) > 0 {
		return nil, errors.New("opts.env is not supported: bcvk sets no environment variables in the VM's container (use kargs or a share for the guest)")
	}
	if o.Itype != nil && *o.Itype == "help" {
		return nil, errors.New(`opts.itype "help" is not an instance type: e.g. u1.small, u1.medium, u1.large`)
	}
	str := func(flag string, v *string) {
		if v != nil {
			args = append(args, "--"+flag+"="+*v)
		}
	}
	list := func(flag string, vs []string) {
		for _, v := range vs {
			args = append(args, "--"+flag+"="+v)
		}
	}
	str("name", o.Name)
	list("label", o.Label)
	str("network", o.Network)
	if o.Rm != nil && *o.Rm {
		args = append(args, "--rm")
	}
	str("itype", o.Itype)
	str("memory", o.Memory)
	if o.VCPUs != nil {
		args = append(args, "--vcpus="+strconv.Itoa(*o.VCPUs))
	}
	list("bind", o.Bind)
	list("ro-bind", o.RoBind)
	list("mount-disk-file", o.MountDiskFiles)
	list("karg", o.Kargs)
	str("add-swap", o.AddSwap)
	// ssh_keygen and console need nothing: every VM has its own key, and
	// its console is always kept (`bcvk ephemeral logs`).
	return append(args, "--", p.Image), nil
}

func (b *varlinkBackend) GetSshConnectionInfo(ctx context.Context, p varlink.SSHInfoParams) (varlink.SSHInfoReply, error) {
	rt, err := newRuntime()
	if err != nil {
		return varlink.SSHInfoReply{}, err
	}
	vms, err := rt.List(ctx)
	if err != nil {
		return varlink.SSHInfoReply{}, err
	}
	v := findVMByID(vms, p.ContainerID)
	if v == nil {
		return varlink.SSHInfoReply{}, fmt.Errorf("%w %q: Ps lists the VMs' container IDs", vm.ErrNoVM, p.ContainerID)
	}
	user, err := v.SSHUser()
	if err != nil {
		return varlink.SSHInfoReply{}, err
	}
	conf, err := vm.SSHConfig(rt.Podman.Path(), v.Name, user, v.StateDir)
	if err != nil {
		return varlink.SSHInfoReply{}, err
	}
	return varlink.SSHInfoReply{
		ContainerID: v.ID, KeyPath: filepath.Join(v.StateDir, spec.SSHKeyFile), User: user,
		Host: v.Name, Port: 22, ProxyCommand: proxyCommand(conf), SSHConfig: conf,
	}, nil
}

// findVMByID finds a VM by its container ID, a prefix of it that podman
// would take (12 characters or more), or its name.
func findVMByID(vms []vm.VM, id string) *vm.VM {
	for i, v := range vms {
		if v.ID == id || v.Name == id || (len(id) >= 12 && strings.HasPrefix(v.ID, id)) {
			return &vms[i]
		}
	}
	return nil
}

// proxyCommand is the ProxyCommand of an ssh_config entry that vm.SSHConfig
// wrote: one source for how ssh reaches a VM. It is already escaped for
// ssh's "%" tokens, as -o ProxyCommand= wants it too.
func proxyCommand(conf string) string {
	for _, l := range strings.Split(conf, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "ProxyCommand "); ok {
			return v
		}
	}
	return ""
}

func (b *varlinkBackend) ToDisk(ctx context.Context, p varlink.ToDiskParams) (varlink.ToDiskReply, error) {
	path, err := filepath.Abs(p.TargetDisk)
	if err != nil {
		return varlink.ToDiskReply{}, err
	}
	args := toDiskArgs(p)
	// A dry run first says whether the disk will be reused: cached.
	var dry bytes.Buffer
	if err := b.command(ctx, newToDiskCommand, append([]string{"--dry-run"}, args...), &dry); err != nil {
		return varlink.ToDiskReply{}, err
	}
	if err := b.command(ctx, newToDiskCommand, args, io.Discard); err != nil {
		return varlink.ToDiskReply{}, err
	}
	return varlink.ToDiskReply{Path: path, Cached: strings.TrimSpace(dry.String()) == "would-reuse"}, nil
}

// toDiskArgs are the `to-disk` arguments of a ToDisk call.
func toDiskArgs(p varlink.ToDiskParams) []string {
	var args []string
	for _, f := range []struct {
		flag string
		v    *string
	}{{"format", p.Format}, {"disk-size", p.DiskSize}, {"filesystem", p.Filesystem}, {"root-size", p.RootSize}} {
		if f.v != nil {
			args = append(args, "--"+f.flag+"="+*f.v)
		}
	}
	for _, k := range p.Kargs {
		args = append(args, "--karg="+k)
	}
	return append(args, "--", p.SourceImage, p.TargetDisk)
}
