package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/events"
	"github.com/bcvk/bcvk/pkg/outer/privdir"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// VM is an ephemeral VM as podman and its state directory describe it.
type VM struct {
	Name     string            `json:"name"`
	ID       string            `json:"id"`
	Image    string            `json:"image"`
	State    string            `json:"state"` // the container's: running, exited, ...
	Ready    bool              `json:"sshReady"`
	Created  time.Time         `json:"created"`
	StateDir string            `json:"stateDir"`
	Labels   map[string]string `json:"labels"`
	// OwnerUnknown says the container names an owning bcvk that this one
	// cannot judge (see judge): it is left alone, not pruned.
	OwnerUnknown bool `json:"ownerUnknown"`
	// Orphaned says the bcvk that started it was killed (see judge): the
	// next run, rm or rm-all removes it; listing leaves it.
	Orphaned bool `json:"orphaned"`
	// SSHTransport is vsock or tcp, once the VM's bcvk-inner chose.
	SSHTransport string `json:"sshTransport,omitempty"`
	// Ports are the guest ports published on the host (-p).
	Ports []spec.Publish `json:"ports"`
	// made says bcvk set its labels (see madeByBcvk); RemoveAll removes
	// only these.
	made bool
}

// OwnerPID is the process ID of the bcvk that started it, from its label.
func (v VM) OwnerPID() string {
	return strings.SplitN(v.Labels[spec.LabelOwner], "@", 2)[0]
}

// SSHUser is the guest user SSH logs in as: the label bcvk set, checked
// again (labels are data anyone with podman could have changed).
func (v VM) SSHUser() (string, error) {
	u := v.Labels[spec.LabelSSHUser]
	if u == "" {
		return spec.DefaultSSHUser, nil
	}
	if err := spec.ValidateUser(u); err != nil {
		return "", fmt.Errorf("VM %s: its %s label: %w", v.Name, spec.LabelSSHUser, err)
	}
	return u, nil
}

// ErrNoVM says that no ephemeral VM has that name.
var ErrNoVM = errors.New("no such VM")

// List returns bcvk's VMs, by name. It changes nothing: VMs left by a
// killed bcvk are listed until Prune removes them.
func (r *Runtime) List(ctx context.Context) ([]VM, error) {
	cs, err := r.Podman.List(ctx, spec.LabelEphemeral+"=1")
	if err != nil {
		return nil, err
	}
	verdicts := r.verdicts(ctx, cs)
	vms := make([]VM, 0, len(cs))
	for i, c := range cs {
		name := c.Labels[spec.LabelName]
		if name == "" && len(c.Names) > 0 {
			name = c.Names[0]
		}
		vm := VM{
			Name: name, ID: c.ID, Image: c.Labels[spec.LabelImage], State: c.State,
			Created: time.Unix(c.Created, 0).UTC(), StateDir: c.Labels[spec.LabelStateDir], Labels: c.Labels,
			OwnerUnknown: verdicts[i] == ownerUnknown, Orphaned: verdicts[i] == prune, made: madeByBcvk(c),
		}
		vm.Ports = spec.ParsePublishLabel(c.Labels[spec.LabelPublish])
		if vm.Ports == nil {
			vm.Ports = []spec.Publish{}
		}
		vm.Ready = c.State == "running" && sshReady(vm.StateDir)
		vm.SSHTransport = sshTransport(vm.StateDir)
		vms = append(vms, vm)
	}
	sort.Slice(vms, func(i, j int) bool { return vms[i].Name < vms[j].Name })
	return vms, nil
}

// Find returns the VM with name, or an error wrapping ErrNoVM.
func (r *Runtime) Find(ctx context.Context, name string) (*VM, error) {
	vms, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	for i := range vms {
		if vms[i].Name == name {
			return &vms[i], nil
		}
	}
	return nil, fmt.Errorf("%w %q: `bcvk ephemeral ps` lists the VMs", ErrNoVM, name)
}

// sshTransport reads what bcvk-inner recorded: one known word, or nothing.
func sshTransport(dir string) string {
	if dir == "" {
		return ""
	}
	f, err := os.OpenFile(filepath.Join(dir, spec.SSHTransportFile), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return ""
	}
	defer f.Close()
	b := make([]byte, 16)
	n, _ := f.Read(b)
	switch t := strings.TrimSpace(string(b[:n])); t {
	case spec.TransportVsock, spec.TransportTCP:
		return t
	}
	return ""
}

func sshReady(dir string) bool {
	if dir == "" {
		return false
	}
	evs, _ := events.ReadAll(filepath.Join(dir, spec.EventsFile))
	for _, e := range evs {
		if e.Phase == events.PhaseSSH {
			return true
		}
	}
	return false
}

// Remove removes VMs by name: the container (stopping it at once) and the
// state directory. A running VM needs force; an unknown name is an error
// unless force.
func (r *Runtime) Remove(ctx context.Context, names []string, force bool) error {
	vms, err := r.List(ctx)
	if err != nil {
		return err
	}
	byName := map[string]VM{}
	for _, vm := range vms {
		byName[vm.Name] = vm
	}
	var errs []error
	for _, n := range names {
		vm, ok := byName[n]
		switch {
		case !ok && force:
			continue
		case !ok:
			errs = append(errs, fmt.Errorf("%w %q (use -f to ignore VMs that are already gone)", ErrNoVM, n))
			continue
		case vm.State == "running" && !force:
			errs = append(errs, fmt.Errorf("VM %q is running: stop it first or use -f", n))
			continue
		}
		if err := r.removeVM(ctx, vm); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Runtime) removeVM(ctx context.Context, vm VM) error {
	if err := r.Podman.Remove(ctx, vm.ID); err != nil {
		return err
	}
	return r.removeStateDir(vm.StateDir)
}

// removeStateDir removes a VM's state directory, but only one inside our
// state base: the path comes from a container label, which anyone who can
// run podman could have set.
func (r *Runtime) removeStateDir(dir string) error {
	if dir == "" {
		return nil
	}
	base, err := r.Host.StateBase()
	if err != nil {
		return err
	}
	if filepath.Dir(filepath.Clean(dir)) != base {
		return nil
	}
	// StateBase checked the base; the entry must be a directory of ours too.
	if err := privdir.Owned(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// RemoveAll removes every ephemeral VM of ours and returns their names.
// A container whose bcvk labels may come from its image is left, and said
// so: `rm NAME` removes it.
func (r *Runtime) RemoveAll(ctx context.Context) ([]string, error) {
	vms, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	var errs []error
	for _, vm := range vms {
		if !vm.made {
			logrus.Warnf("left container %s: its bcvk labels may come from its image (it lacks bcvk's runner label, or an older bcvk made it); `bcvk ephemeral rm -f %s` removes it", vm.Name, vm.Name)
			continue
		}
		if err := r.removeVM(ctx, vm); err != nil {
			errs = append(errs, err)
			continue
		}
		names = append(names, vm.Name)
	}
	if err := r.PruneStateDirs(ctx); err != nil {
		errs = append(errs, err)
	}
	return names, errors.Join(errs...)
}

// PruneStateDirs removes state directories whose container is gone: a VM
// run with --rm, or a bcvk that was killed before it could clean up.
func (r *Runtime) PruneStateDirs(ctx context.Context) error {
	base, err := r.Host.StateBase()
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		return err
	}
	vms, err := r.List(ctx)
	if err != nil {
		return err
	}
	inUse := map[string]bool{}
	for _, vm := range vms {
		inUse[vm.StateDir] = true
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(base, e.Name())
		if !e.IsDir() || inUse[p] || !strings.Contains(e.Name(), "-") {
			continue
		}
		// A directory younger than a minute may belong to a VM whose
		// container is being created right now.
		if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < time.Minute {
			continue
		}
		if err := privdir.Owned(p); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
