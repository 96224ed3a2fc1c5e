package ephemeral

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
	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/spec"
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
}

// ErrNoVM says that no ephemeral VM has that name.
var ErrNoVM = errors.New("no such VM")

// List returns bcvk's ephemeral VMs, by name. VMs left by a killed bcvk
// (see PruneOrphans) are removed on the way.
func List(ctx context.Context, pc *podman.Client) ([]VM, error) {
	cs, err := pc.List(ctx, spec.LabelEphemeral+"=1")
	if err != nil {
		return nil, err
	}
	vms := make([]VM, 0, len(cs))
	for _, c := range cs {
		if o := c.Labels[spec.LabelOwner]; o != "" && ownerGone(o) && removeOrphan(ctx, pc, c) == nil {
			continue
		}
		name := c.Labels[spec.LabelName]
		if name == "" && len(c.Names) > 0 {
			name = c.Names[0]
		}
		vm := VM{
			Name: name, ID: c.ID, Image: c.Labels[spec.LabelImage], State: c.State,
			Created: time.Unix(c.Created, 0).UTC(), StateDir: c.Labels[spec.LabelStateDir], Labels: c.Labels,
		}
		vm.Ready = c.State == "running" && sshReady(vm.StateDir)
		vms = append(vms, vm)
	}
	sort.Slice(vms, func(i, j int) bool { return vms[i].Name < vms[j].Name })
	return vms, nil
}

// Find returns the VM with name, or an error wrapping ErrNoVM.
func Find(ctx context.Context, pc *podman.Client, name string) (*VM, error) {
	vms, err := List(ctx, pc)
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
func Remove(ctx context.Context, pc *podman.Client, names []string, force bool) error {
	vms, err := List(ctx, pc)
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
		if err := removeVM(ctx, pc, vm); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func removeVM(ctx context.Context, pc *podman.Client, vm VM) error {
	if err := pc.Remove(ctx, vm.ID); err != nil {
		return err
	}
	return removeStateDir(vm.StateDir)
}

// removeStateDir removes a VM's state directory, but only one inside our
// state base: the path comes from a container label, which anyone who can
// run podman could have set.
func removeStateDir(dir string) error {
	if dir == "" {
		return nil
	}
	base, err := StateBase()
	if err != nil {
		return err
	}
	if filepath.Dir(filepath.Clean(dir)) != base {
		return nil
	}
	return os.RemoveAll(dir)
}

// RemoveAll removes every ephemeral VM of ours and returns their names.
func RemoveAll(ctx context.Context, pc *podman.Client) ([]string, error) {
	vms, err := List(ctx, pc)
	if err != nil {
		return nil, err
	}
	var names []string
	var errs []error
	for _, vm := range vms {
		if err := removeVM(ctx, pc, vm); err != nil {
			errs = append(errs, err)
			continue
		}
		names = append(names, vm.Name)
	}
	if err := PruneStateDirs(ctx, pc); err != nil {
		errs = append(errs, err)
	}
	return names, errors.Join(errs...)
}

// PruneStateDirs removes state directories whose container is gone: a VM
// run with --rm, or a bcvk that was killed before it could clean up.
func PruneStateDirs(ctx context.Context, pc *podman.Client) error {
	base, err := StateBase()
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		return err
	}
	vms, err := List(ctx, pc)
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
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
