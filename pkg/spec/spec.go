// Package spec holds the contract between the host side (bcvk) and the
// container side (bcvk-inner): one versioned JSON document that says what VM
// to boot. Both sides validate it.
package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Version is bumped on every incompatible change of Spec.
const Version = 1

// Paths inside the runner container. They are fixed so that the runner image
// can also be started by hand with `podman run`.
const (
	// ImageRoot is where the bootc image is mounted (--mount=type=image).
	ImageRoot = "/bcvk/image"
	// StateDir is a host directory shared with the container: spec, SSH key,
	// events and the serial console log live here.
	StateDir = "/bcvk/state"
	// DisksDir is where a host directory with disk images is mounted (to-disk).
	DisksDir = "/bcvk/disks"
	// RunDir holds sockets and scratch files private to the container.
	RunDir = "/run/bcvk"
	// SpecFile is the name of the spec inside StateDir.
	SpecFile = "spec.json"
	// EventsFile is the JSON-lines event stream inside StateDir.
	EventsFile = "events.jsonl"
	// ConsoleFile is the serial console log inside StateDir.
	ConsoleFile = "console.log"
	// JournalFile is the guest's journal as plain lines inside StateDir.
	JournalFile = "journal.log"
	// JournalMount is where the user's --journal file is mounted.
	JournalMount = "/bcvk/journal"
	// SSHKeyFile is the private key inside StateDir; the public key has ".pub".
	SSHKeyFile = "ssh_key"
	// GuestSSHPort is the port QEMU forwards to the guest's port 22, on the
	// container's loopback only.
	GuestSSHPort = 2222
	// GuestNetProbePort is forwarded to the guest's port 1, where nothing
	// listens: a refusal there says the guest has its network address.
	GuestNetProbePort = 2223
)

// GuestNet is the guest's user network. Not QEMU's default 10.0.2.0/24:
// rootless podman's slirp4netns gives the container that same network, and
// a published port's connection then comes from 10.0.2.100, an address in
// the guest's own subnet, where its replies go unanswered.
const GuestNet = "10.0.76.0/24"

// Accelerator choices.
const (
	AccelAuto = "auto"
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// Defaults shared by both sides.
const (
	DefaultMemoryMiB         = 2048
	DefaultAccelProbeTimeout = 5 * time.Second
	DefaultShutdownTimeout   = 20 * time.Second
	MinMemoryMiB             = 256
	MaxMemoryMiB             = 1 << 20 // 1 TiB
	MaxVCPUs                 = 255
)

// Duration is a time.Duration that reads and writes as "1m30s" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Spec describes one VM.
type Spec struct {
	Version    int      `json:"version"`
	Name       string   `json:"name"`
	MemoryMiB  int      `json:"memoryMiB"`
	VCPUs      int      `json:"vcpus"`
	KernelArgs []string `json:"kernelArgs,omitempty"`
	Accel      string   `json:"accel"`
	// AccelProbeTimeout bounds how long a KVM boot may stay silent before
	// bcvk-inner gives up on KVM and boots with TCG.
	AccelProbeTimeout Duration `json:"accelProbeTimeout"`
	// ShutdownTimeout bounds the wait for a guest power-off after SIGTERM.
	ShutdownTimeout Duration `json:"shutdownTimeout"`
	// SSHAuthorizedKey is the public key line to authorize for root.
	SSHAuthorizedKey string `json:"sshAuthorizedKey,omitempty"`
	// Console attaches the serial console to the container's stdio.
	Console bool `json:"console"`
	// Binds are host directories shared into the guest.
	Binds []Bind `json:"binds,omitempty"`
	// Disks are attached as virtio block devices.
	Disks []Disk `json:"disks,omitempty"`
	// Warm is WarmSave, WarmRestore or empty (see warm.go).
	Warm string `json:"warm,omitempty"`
	// HostStorage, when set, shares the host's container storage
	// read-only with the guest (see storage.go).
	HostStorage *HostStorage `json:"hostStorage,omitempty"`
	// SSHUser is the guest user SSH logs in as; empty is root. The key is
	// authorized for root as well (bcvk-inner's own logins).
	SSHUser string `json:"sshUser,omitempty"`
	// RootTransport is how the guest reaches the image root: virtiofs
	// (also when empty), erofs or auto (see root.go).
	RootTransport string `json:"rootTransport,omitempty"`
	// ImageID is the mounted image's ID: the EROFS cache's key.
	ImageID string `json:"imageID,omitempty"`
	// ImageSize is the image's size in bytes as podman reports it; auto
	// weighs it against the cost of building the EROFS image.
	ImageSize int64 `json:"imageSize,omitempty"`
	// SSHTransport is auto (also when empty), vsock or tcp (transport.go).
	SSHTransport string `json:"sshTransport,omitempty"`
	// Network is user (also when empty) or none.
	Network string `json:"network,omitempty"`
	// Publish are guest ports published on the host (publish.go).
	Publish []Publish `json:"publish,omitempty"`
	// AttachedDisks are the user's disk files (attach.go).
	AttachedDisks []AttachedDisk `json:"attachedDisks,omitempty"`
	// SwapBytes, when positive, gives the guest a swap disk this large.
	SwapBytes int64 `json:"swapBytes,omitempty"`
	// Journal is the host file (an absolute path) that gets a copy of the
	// guest's journal (--journal); bcvk-inner writes it at JournalMount.
	Journal string `json:"journal,omitempty"`
	// CloudInit, when set, is a NoCloud seed attached as a disk labelled
	// CIDATA (see cloudinit.go).
	CloudInit *CloudInit `json:"cloudInit,omitempty"`
}

// New returns a spec with defaults filled in.
func New() Spec {
	return Spec{
		Version:           Version,
		MemoryMiB:         DefaultMemoryMiB,
		VCPUs:             2,
		Accel:             AccelAuto,
		AccelProbeTimeout: Duration(DefaultAccelProbeTimeout),
		ShutdownTimeout:   Duration(DefaultShutdownTimeout),
	}
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// ValidateName checks a VM name: it becomes a container name.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid name %q: use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return nil
}

// maxKernelArg is the x86 kernel's whole command-line size.
const maxKernelArg = 2048

// ValidateKernelArg rejects arguments that cannot be passed through a kernel
// command line intact.
func ValidateKernelArg(a string) error {
	switch {
	case a == "":
		return errors.New("empty kernel argument")
	case strings.ContainsFunc(a, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("kernel argument %q contains white space or a control character; pass each argument with its own --karg", a)
	case strings.Count(a, `"`)%2 != 0:
		// The kernel splits at white space outside double quotes: an odd
		// quote would swallow the arguments after it.
		return fmt.Errorf("kernel argument %q has an unbalanced double quote", a)
	case len(a) > maxKernelArg:
		return fmt.Errorf("kernel argument %.40q... is longer than %d bytes", a, maxKernelArg)
	}
	return nil
}

// Validate checks every field and returns all problems at once.
func (s *Spec) Validate() error {
	var errs []error
	if s.Version != Version {
		errs = append(errs, fmt.Errorf("spec version %d is not supported (this bcvk-inner speaks version %d): use a runner image that matches bcvk", s.Version, Version))
	}
	if s.Name != "" {
		if err := ValidateName(s.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if s.MemoryMiB < MinMemoryMiB || s.MemoryMiB > MaxMemoryMiB {
		errs = append(errs, fmt.Errorf("memory %d MiB is out of range: give between %d MiB and %d MiB", s.MemoryMiB, MinMemoryMiB, MaxMemoryMiB))
	}
	if s.VCPUs < 1 || s.VCPUs > MaxVCPUs {
		errs = append(errs, fmt.Errorf("vcpus %d is out of range: give between 1 and %d", s.VCPUs, MaxVCPUs))
	}
	for _, a := range s.KernelArgs {
		if err := ValidateKernelArg(a); err != nil {
			errs = append(errs, err)
		}
	}
	switch s.Accel {
	case AccelAuto, AccelKVM, AccelTCG:
	default:
		errs = append(errs, fmt.Errorf("accelerator %q is not known: use auto, kvm or tcg", s.Accel))
	}
	if s.AccelProbeTimeout <= 0 {
		errs = append(errs, errors.New("the accelerator probe timeout must be positive"))
	}
	if s.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("the shutdown timeout must be positive"))
	}
	errs = append(errs, validateTransport(s)...)
	if err := validateBinds(s.Binds); err != nil {
		errs = append(errs, err)
	}
	if err := validateDisks(s.Disks); err != nil {
		errs = append(errs, err)
	}
	if err := validateAttached(s); err != nil {
		errs = append(errs, err)
	}
	if err := validatePublish(s.Publish); err != nil {
		errs = append(errs, err)
	}
	if len(s.Publish) > 0 && s.Network == NetworkNone {
		errs = append(errs, errors.New("--network none has no network to publish ports on: leave out -p or the --network none"))
	}
	switch s.Warm {
	case "", WarmSave, WarmRestore:
		if s.Warm != "" {
			errs = append(errs, validateWarmDevices(*s)...)
		}
		if s.Warm != "" && (len(s.AttachedDisks) > 0 || s.SwapBytes > 0) {
			errs = append(errs, errors.New("a warm start cannot have --mount-disk-file or --add-swap: a saved VM cannot take new disks; leave out --warm"))
		}
	default:
		errs = append(errs, fmt.Errorf("warm mode %q is not known", s.Warm))
	}
	if s.CloudInit != nil {
		if s.Warm != "" {
			errs = append(errs, errors.New("a warm start cannot have a cloud-init seed: a saved VM cannot take new devices, and its cloud-init has run"))
		}
		if err := s.CloudInit.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.HostStorage != nil {
		if err := s.HostStorage.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.SSHUser != "" {
		if err := ValidateUser(s.SSHUser); err != nil {
			errs = append(errs, err)
		}
	}
	if err := validateRoot(s); err != nil {
		errs = append(errs, err)
	}
	if s.ImageSize < 0 {
		errs = append(errs, errors.New("the image size cannot be negative"))
	}
	if s.Journal != "" && (!filepath.IsAbs(s.Journal) || filepath.Clean(s.Journal) != s.Journal) {
		errs = append(errs, fmt.Errorf("the journal file %q must be an absolute, clean path", s.Journal))
	}
	if strings.ContainsAny(s.SSHAuthorizedKey, "\n\r") {
		errs = append(errs, errors.New("the SSH public key must be a single line"))
	}
	return errors.Join(errs...)
}

// Write stores the spec as JSON at path with mode 0600.
func (s *Spec) Write(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// Read loads and validates a spec.
func Read(path string) (Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, err
	}
	s := New()
	if err := json.Unmarshal(b, &s); err != nil {
		return Spec{}, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := s.Validate(); err != nil {
		return Spec{}, fmt.Errorf("invalid spec %s: %w", path, err)
	}
	return s, nil
}
