package varlink

import (
	"context"
	_ "embed"
)

// The interface names, field names and error names are the Rust bcvk's
// (bootc-dev/bcvk crates/kit/src/varlink_ipc.rs), so that a caller of one
// works with the other.
const (
	ImagesInterface    = "io.bootc.vk.images"
	EphemeralInterface = "io.bootc.vk.ephemeral"
	ToDiskInterface    = "io.bootc.vk.todisk"
)

var (
	//go:embed org.varlink.service.varlink
	serviceDescription string
	//go:embed io.bootc.vk.images.varlink
	imagesDescription string
	//go:embed io.bootc.vk.ephemeral.varlink
	ephemeralDescription string
	//go:embed io.bootc.vk.todisk.varlink
	toDiskDescription string
)

// ListReply is io.bootc.vk.images.List's.
type ListReply struct {
	Images []string `json:"images"`
}

// PsReply is io.bootc.vk.ephemeral.Ps's.
type PsReply struct {
	ContainerIDs []string `json:"container_ids"`
}

// RunOpts are Run's optional settings (EphemeralRunOpts).
type RunOpts struct {
	SSHKeygen      *bool    `json:"ssh_keygen,omitempty"`
	Name           *string  `json:"name,omitempty"`
	Label          []string `json:"label,omitempty"`
	Network        *string  `json:"network,omitempty"`
	Env            []string `json:"env,omitempty"`
	Rm             *bool    `json:"rm,omitempty"`
	Itype          *string  `json:"itype,omitempty"`
	Memory         *string  `json:"memory,omitempty"`
	VCPUs          *int     `json:"vcpus,omitempty"`
	Console        *bool    `json:"console,omitempty"`
	Bind           []string `json:"bind,omitempty"`
	RoBind         []string `json:"ro_bind,omitempty"`
	MountDiskFiles []string `json:"mount_disk_files,omitempty"`
	Kargs          []string `json:"kargs,omitempty"`
	AddSwap        *string  `json:"add_swap,omitempty"`
}

// RunParams are io.bootc.vk.ephemeral.Run's.
type RunParams struct {
	Image string   `json:"image"`
	Opts  *RunOpts `json:"opts,omitempty"`
}

// RunReply is Run's.
type RunReply struct {
	ContainerID string `json:"container_id"`
}

// SSHInfoParams are GetSshConnectionInfo's.
type SSHInfoParams struct {
	ContainerID string `json:"container_id"`
}

// SSHInfoReply is GetSshConnectionInfo's. The Rust bcvk's fields describe
// an ssh run inside the container (podman exec); bcvk's describe one from
// the host, through ProxyCommand, and add proxy_command and ssh_config.
type SSHInfoReply struct {
	ContainerID  string `json:"container_id"`
	KeyPath      string `json:"key_path"`
	User         string `json:"user"`
	Host         string `json:"host"`
	Port         int    `json:"port"`
	ProxyCommand string `json:"proxy_command"`
	SSHConfig    string `json:"ssh_config"`
}

// ToDiskParams are io.bootc.vk.todisk.ToDisk's.
type ToDiskParams struct {
	SourceImage string   `json:"source_image"`
	TargetDisk  string   `json:"target_disk"`
	Format      *string  `json:"format,omitempty"`
	DiskSize    *string  `json:"disk_size,omitempty"`
	Filesystem  *string  `json:"filesystem,omitempty"`
	RootSize    *string  `json:"root_size,omitempty"`
	Kargs       []string `json:"kargs,omitempty"`
}

// ToDiskReply is ToDisk's.
type ToDiskReply struct {
	Path   string `json:"path"`
	Cached bool   `json:"cached"`
}

// Backend does the work of bcvk's methods; the CLI implements it with the
// code of the matching commands. Required parameters have been checked.
type Backend interface {
	List(context.Context) (ListReply, error)
	Ps(context.Context) (PsReply, error)
	Run(context.Context, RunParams) (RunReply, error)
	GetSshConnectionInfo(context.Context, SSHInfoParams) (SSHInfoReply, error)
	ToDisk(context.Context, ToDiskParams) (ToDiskReply, error)
}

// NewBcvk is the service with bcvk's interfaces.
func NewBcvk(b Backend, version string) *Service {
	s := NewService("io.bootc.vk", "bcvk", version, "https://github.com/bcvk/bcvk")
	message := func(name string) func(error) *Error {
		return func(err error) *Error { return &Error{Name: name, Parameters: Message{err.Error()}} }
	}
	s.Register(&Interface{
		Name: ImagesInterface, Description: imagesDescription,
		Methods: map[string]MethodFunc{
			"List": Method(func(ctx context.Context, _ struct{}) (ListReply, error) { return b.List(ctx) }),
		},
		Fail: message(ImagesInterface + ".PodmanError"),
	})
	s.Register(&Interface{
		Name: EphemeralInterface, Description: ephemeralDescription,
		Methods: map[string]MethodFunc{
			"Ps": Method(func(ctx context.Context, _ struct{}) (PsReply, error) { return b.Ps(ctx) }),
			"Run": Method(func(ctx context.Context, p RunParams) (RunReply, error) {
				if p.Image == "" {
					return RunReply{}, InvalidParameter("image")
				}
				return b.Run(ctx, p)
			}),
			"GetSshConnectionInfo": Method(func(ctx context.Context, p SSHInfoParams) (SSHInfoReply, error) {
				if p.ContainerID == "" {
					return SSHInfoReply{}, InvalidParameter("container_id")
				}
				return b.GetSshConnectionInfo(ctx, p)
			}),
		},
		Fail: message(EphemeralInterface + ".PodmanError"),
	})
	s.Register(&Interface{
		Name: ToDiskInterface, Description: toDiskDescription,
		Methods: map[string]MethodFunc{
			"ToDisk": Method(func(ctx context.Context, p ToDiskParams) (ToDiskReply, error) {
				switch {
				case p.SourceImage == "":
					return ToDiskReply{}, InvalidParameter("source_image")
				case p.TargetDisk == "":
					return ToDiskReply{}, InvalidParameter("target_disk")
				}
				return b.ToDisk(ctx, p)
			}),
		},
		Fail: message(ToDiskInterface + ".Failed"),
	})
	return s
}
