package vm

import (
	"context"
	"fmt"

	"github.com/bcvk/bcvk/pkg/outer/podman"
)

// Podman is what the runtime asks of podman; *podman.Client is the real
// one.
type Podman interface {
	// Path is the podman binary, for command lines that others run (the
	// ssh_config ProxyCommand).
	Path() string
	Version(ctx context.Context) (string, error)
	ImageExists(ctx context.Context, ref string) (bool, error)
	InspectImage(ctx context.Context, ref string) (*podman.Image, error)
	Pull(ctx context.Context, ref string, tlsVerify bool) error
	// Run runs `podman ARGS` to completion (podman run --detach).
	Run(ctx context.Context, args []string) (string, error)
	// Attach runs `podman ARGS` with the caller's streams (podman exec).
	Attach(ctx context.Context, a podman.Attached) error
	Stop(ctx context.Context, name string, timeout int) error
	Remove(ctx context.Context, names ...string) error
	Wait(ctx context.Context, name string) (int, error)
	List(ctx context.Context, label string) ([]podman.Container, error)
	ContainerState(ctx context.Context, name string) (string, error)
	Remote(ctx context.Context) bool
	Info(ctx context.Context) (*podman.Info, error)
}

var _ Podman = (*podman.Client)(nil)

// Runtime runs VMs in runner containers on one host.
type Runtime struct {
	Podman Podman
	Host   Host
}

// New is a runtime for podman on host.
func New(pc Podman, host Host) *Runtime { return &Runtime{Podman: pc, Host: host} }

// ExitError is the status of a command that ran in a VM, with a message
// when the VM ended under it.
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("exit status %d", e.Code)
}
