package vm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/spec"
)

// fakePodman is a podman in memory: containers, images, and a log of
// every call that changes something.
type fakePodman struct {
	mu         sync.Mutex
	containers []podman.Container
	images     map[string]*podman.Image
	remote     bool
	// waitCode is what Wait returns for a container that is not running.
	waitCode int
	// attach runs in place of `podman exec`, with the call.
	attach func(a podman.Attached) error
	// runErrs fail the next `podman run`s, one each, before any succeeds.
	runErrs []error
	calls   []string
}

var _ Podman = (*fakePodman)(nil)

func (f *fakePodman) log(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

// changes returns the calls that change something, in order.
func (f *fakePodman) changes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakePodman) Path() string                            { return "/usr/bin/podman" }
func (f *fakePodman) Version(context.Context) (string, error) { return "5.4.0", nil }
func (f *fakePodman) Remote(context.Context) bool             { return f.remote }
func (f *fakePodman) Info(context.Context) (*podman.Info, error) {
	i := &podman.Info{}
	i.Store.GraphRoot, i.Store.GraphDriverName = "/var/lib/containers/storage", "overlay"
	return i, nil
}
func (f *fakePodman) Pull(_ context.Context, ref string, _ bool) error {
	f.log("pull %s", ref)
	return nil
}

func (f *fakePodman) ImageExists(_ context.Context, ref string) (bool, error) {
	_, ok := f.images[ref]
	return ok, nil
}

func (f *fakePodman) InspectImage(_ context.Context, ref string) (*podman.Image, error) {
	if img, ok := f.images[ref]; ok {
		return img, nil
	}
	return nil, podman.ErrNoImage
}

// Run records `podman run` and adds the container it describes.
func (f *fakePodman) Run(_ context.Context, args []string) (string, error) {
	f.log("run %s", args[len(args)-1])
	f.mu.Lock()
	if len(f.runErrs) > 0 {
		err := f.runErrs[0]
		f.runErrs = f.runErrs[1:]
		f.mu.Unlock()
		return "", err
	}
	f.mu.Unlock()
	c := podman.Container{State: "running", Labels: map[string]string{}}
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--name":
			c.Names, c.ID = []string{args[i+1]}, "id-"+args[i+1]
		case "--label":
			k, v, _ := strings.Cut(args[i+1], "=")
			c.Labels[k] = v
		}
	}
	if img, ok := f.images[args[len(args)-1]]; ok {
		c.ImageID = img.ID
	}
	f.mu.Lock()
	f.containers = append(f.containers, c)
	f.mu.Unlock()
	return c.ID, nil
}

func (f *fakePodman) Attach(_ context.Context, a podman.Attached) error {
	f.log("%s", strings.Join(a.Args, " "))
	if f.attach != nil {
		return f.attach(a)
	}
	return nil
}

func (f *fakePodman) Stop(_ context.Context, name string, _ int) error {
	f.log("stop %s", name)
	return nil
}

func (f *fakePodman) Remove(_ context.Context, names ...string) error {
	f.log("rm %s", strings.Join(names, " "))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers = slices.DeleteFunc(f.containers, func(c podman.Container) bool {
		return slices.Contains(names, c.ID) || (len(c.Names) > 0 && slices.Contains(names, c.Names[0]))
	})
	return nil
}

func (f *fakePodman) find(name string) (podman.Container, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.ID == name || (len(c.Names) > 0 && c.Names[0] == name) {
			return c, true
		}
	}
	return podman.Container{}, false
}

// Wait returns at once for a container that is not running, else when ctx
// ends.
func (f *fakePodman) Wait(ctx context.Context, name string) (int, error) {
	if c, ok := f.find(name); !ok || c.State != "running" {
		return f.waitCode, nil
	}
	<-ctx.Done()
	return -1, ctx.Err()
}

func (f *fakePodman) ContainerState(_ context.Context, name string) (string, error) {
	c, ok := f.find(name)
	if !ok {
		return "", fmt.Errorf("no container %s", name)
	}
	return c.State, nil
}

// List filters by a label key, or key=value, as podman ps --filter does.
func (f *fakePodman) List(_ context.Context, label string) ([]podman.Container, error) {
	k, v, hasValue := strings.Cut(label, "=")
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []podman.Container
	for _, c := range f.containers {
		if got, ok := c.Labels[k]; ok && (!hasValue || got == v) {
			out = append(out, c)
		}
	}
	return out, nil
}

// removals are the `podman rm` calls among calls.
func removals(calls []string) []string {
	var rm []string
	for _, c := range calls {
		if strings.HasPrefix(c, "rm ") {
			rm = append(rm, c)
		}
	}
	return rm
}

// runnerImages are a bootc image and the runner, as the fake knows them.
func runnerImages() map[string]*podman.Image {
	return map[string]*podman.Image{
		"localhost/img:1":    {ID: "img-sha", Labels: map[string]string{spec.BootcLabel: "1"}},
		"localhost/runner:1": {ID: "runner-sha"},
	}
}
