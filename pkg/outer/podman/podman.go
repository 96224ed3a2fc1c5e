// Package podman wraps the podman command line. Every call goes through the
// command package, and structured output is read as JSON, never as tables.
// References and names go after "--", so one that begins with "-" is never
// taken for an option.
package podman

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bcvk/bcvk/pkg/command"
)

// Client runs podman.
type Client struct {
	Binary string
}

// New finds podman on PATH.
func New() (*Client, error) {
	p, err := exec.LookPath("podman")
	if err != nil {
		return nil, errors.New("podman is not installed or not on PATH: install it (on Debian: apt-get install podman, or run hack/install-host-deps.sh as root)")
	}
	return &Client{Binary: p}, nil
}

func (c *Client) argv(args ...string) []string { return append([]string{c.Binary}, args...) }

// Path is the podman binary.
func (c *Client) Path() string { return c.Binary }

// Attached is a podman call with the caller's streams.
type Attached struct {
	Args []string
	// Display replaces Args in error messages when Args hold something
	// that must not appear there (see command.Cmd).
	Display        []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Foreground leaves podman in the terminal's process group, for an
	// interactive session; otherwise bcvk handles Ctrl-C itself.
	Foreground bool
}

// Attach runs podman with a's arguments and streams and waits.
func (c *Client) Attach(ctx context.Context, a Attached) error {
	var display []string
	if a.Display != nil {
		display = c.argv(a.Display...)
	}
	return command.Run(ctx, command.Cmd{
		Argv: c.argv(a.Args...), Display: display, Stdin: a.Stdin, Stdout: a.Stdout, Stderr: a.Stderr,
		NewProcessGroup: !a.Foreground,
	})
}

// Output runs podman with args and returns stdout.
func (c *Client) Output(ctx context.Context, args ...string) ([]byte, error) {
	return command.Output(ctx, c.argv(args...)...)
}

// Version returns the podman client version, and fails when podman cannot
// reach its storage (the first thing that breaks on a misconfigured host).
func (c *Client) Version(ctx context.Context) (string, error) {
	out, err := c.Output(ctx, "version", "--format", "json")
	if err != nil {
		return "", fmt.Errorf("podman is not usable: %w", err)
	}
	var v struct {
		Client struct{ Version string }
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return "", fmt.Errorf("reading podman version: %w", err)
	}
	return v.Client.Version, nil
}

// Image is the part of `podman image inspect` that bcvk uses.
type Image struct {
	ID       string            `json:"Id"`
	Digest   string            `json:"Digest"`
	RepoTags []string          `json:"RepoTags"`
	Labels   map[string]string `json:"Labels"`
	Size     int64             `json:"Size"`
	Created  string            `json:"Created"`
}

// ErrNoImage says that an image is not in local storage.
var ErrNoImage = errors.New("image not known")

// InspectImage returns a local image, or ErrNoImage.
func (c *Client) InspectImage(ctx context.Context, ref string) (*Image, error) {
	out, err := c.Output(ctx, "image", "inspect", "--format", "json", "--", ref)
	if err != nil {
		var ce *command.Error
		if errors.As(err, &ce) && (strings.Contains(ce.Stderr, "image not known") || strings.Contains(ce.Stderr, "no such image") || strings.Contains(ce.Stderr, "failed to find image")) {
			return nil, ErrNoImage
		}
		return nil, err
	}
	var imgs []Image
	if err := json.Unmarshal(out, &imgs); err != nil {
		return nil, fmt.Errorf("reading podman image inspect output: %w", err)
	}
	if len(imgs) == 0 {
		return nil, ErrNoImage
	}
	return &imgs[0], nil
}

// ImageExists reports whether ref is in local storage.
func (c *Client) ImageExists(ctx context.Context, ref string) (bool, error) {
	err := command.Run(ctx, command.Cmd{Argv: c.argv("image", "exists", "--", ref), NewProcessGroup: true})
	if err == nil {
		return true, nil
	}
	if command.ExitCode(err) == 1 {
		return false, nil
	}
	return false, err
}

// Pull pulls ref; tlsVerify false turns TLS verification off.
func (c *Client) Pull(ctx context.Context, ref string, tlsVerify bool) error {
	_, err := c.Output(ctx, "pull", "--quiet", fmt.Sprintf("--tls-verify=%t", tlsVerify), "--", ref)
	return err
}

// Run starts a detached container and returns its ID.
func (c *Client) Run(ctx context.Context, args []string) (string, error) {
	out, err := c.Output(ctx, args...)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Stop stops a container, giving it timeout seconds before SIGKILL.
func (c *Client) Stop(ctx context.Context, name string, timeout int) error {
	_, err := c.Output(ctx, "stop", "--ignore", "--time", fmt.Sprint(timeout), "--", name)
	return err
}

// Remove force-removes containers at once; names that do not exist are fine.
func (c *Client) Remove(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		return nil
	}
	_, err := c.Output(ctx, append([]string{"rm", "--force", "--ignore", "--time", "0", "--"}, names...)...)
	return err
}

// Wait blocks until the container stops and returns its exit code.
func (c *Client) Wait(ctx context.Context, name string) (int, error) {
	out, err := c.Output(ctx, "wait", "--", name)
	if err != nil {
		return -1, err
	}
	var code int
	if _, err := fmt.Sscan(strings.TrimSpace(string(out)), &code); err != nil {
		return -1, fmt.Errorf("reading podman wait output %q: %w", out, err)
	}
	return code, nil
}

// Container is the part of `podman ps --format json` that bcvk uses.
type Container struct {
	ID       string            `json:"Id"`
	Names    []string          `json:"Names"`
	Image    string            `json:"Image"`
	ImageID  string            `json:"ImageID"`
	State    string            `json:"State"`
	Labels   map[string]string `json:"Labels"`
	Status   string            `json:"Status"`
	Created  int64             `json:"Created"`
	ExitCode int               `json:"ExitCode"`
}

// List returns all containers (running or not) that carry label (k=v).
func (c *Client) List(ctx context.Context, label string) ([]Container, error) {
	out, err := c.Output(ctx, "ps", "--all", "--format", "json", "--filter", "label="+label)
	if err != nil {
		return nil, err
	}
	var cs []Container
	if err := json.Unmarshal(out, &cs); err != nil {
		return nil, fmt.Errorf("reading podman ps output: %w", err)
	}
	return cs, nil
}

// Info is the part of `podman info` that bcvk checks.
type Info struct {
	Host struct {
		OCIRuntime struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"ociRuntime"`
		CgroupVersion string `json:"cgroupVersion"`
		Security      struct {
			Rootless bool `json:"rootless"`
		} `json:"security"`
		ServiceIsRemote bool `json:"serviceIsRemote"`
	} `json:"host"`
	Store struct {
		GraphRoot       string `json:"graphRoot"`
		GraphDriverName string `json:"graphDriverName"`
	} `json:"store"`
	Version struct {
		Version string `json:"Version"`
	} `json:"version"`
}

// Info returns `podman info`.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	out, err := c.Output(ctx, "info", "--format", "json")
	if err != nil {
		return nil, fmt.Errorf("podman is not usable: %w", err)
	}
	var i Info
	if err := json.Unmarshal(out, &i); err != nil {
		return nil, fmt.Errorf("reading podman info: %w", err)
	}
	return &i, nil
}

// ContainerState returns a container's state (running, exited, ...).
func (c *Client) ContainerState(ctx context.Context, name string) (string, error) {
	out, err := c.Output(ctx, "container", "inspect", "--format", "{{.State.Status}}", "--", name)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Remote reports whether podman may run containers on another machine or
// in a service that is not ours (CONTAINER_HOST, a named connection,
// podman-remote, or `remote` in containers.conf). Then our process table
// says nothing about who owns a container. A podman that cannot say counts
// as remote.
func (c *Client) Remote(ctx context.Context) bool {
	if os.Getenv("CONTAINER_HOST") != "" || os.Getenv("CONTAINER_CONNECTION") != "" ||
		strings.HasPrefix(filepath.Base(c.Binary), "podman-remote") {
		return true
	}
	i, err := c.Info(ctx)
	return err != nil || i.Host.ServiceIsRemote
}

// MountArg formats a --mount value from its KEY=VALUE fields. podman splits
// the value with encoding/csv, so a field that holds a comma or a quote is
// put in quotes with its quotes doubled; other fields stay as they are.
// encoding/csv reads "\r\n" in a quoted field back as "\n", so a path with
// control characters cannot be carried: CheckMountPath refuses those.
func MountArg(fields ...string) string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f
		if strings.ContainsAny(f, ",\"\r\n") {
			out[i] = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
		}
	}
	return strings.Join(out, ",")
}

// CheckMountPath refuses a host path that a --mount value cannot carry
// exactly.
func CheckMountPath(what, p string) error {
	if p == "" {
		return fmt.Errorf("%s: the path is empty", what)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s %q: paths with control characters (such as a newline) cannot be mounted into a container; rename it", what, p)
		}
	}
	return nil
}

// MountImage mounts an image read-only and returns where (root only:
// rootless podman mounts in its own namespace). UnmountImage undoes it.
func (c *Client) MountImage(ctx context.Context, id string) (string, error) {
	out, err := c.Output(ctx, "image", "mount", "--", id)
	if err != nil {
		return "", err
	}
	p := strings.TrimSpace(string(out))
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\n\x00") {
		return "", fmt.Errorf("podman image mount %s printed %.80q, not a path", id, p)
	}
	return p, nil
}

// UnmountImage unmounts an image mounted by MountImage.
func (c *Client) UnmountImage(ctx context.Context, id string) error {
	_, err := c.Output(ctx, "image", "unmount", "--", id)
	return err
}
