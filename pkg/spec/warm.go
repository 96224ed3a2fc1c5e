package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/bcvk/bcvk/pkg/credential"
)

// Warm start: a VM that booted once is saved (RAM, devices, virtiofsd's
// state) and later runs are restored from it instead of booting.
const (
	WarmSave    = "save"    // boot, and save the VM once SSH answers
	WarmRestore = "restore" // restore the saved VM instead of booting
	// WarmDir is where the host's warm-start directory is mounted.
	WarmDir = "/bcvk/warm"
	// Files in WarmDir.
	WarmStateFile     = "state"
	WarmInitramfsFile = "initramfs.img"
	// WarmKeyFile is the key a restore logs in with: made for the save,
	// the only key the saved guest accepts, and never a user's.
	WarmKeyFile  = "ssh_key"
	WarmMetaFile = "meta.json"
	// WarmSharePorts is how many shares a warm VM can take: its saved
	// machine has that many empty PCIe root ports, into which the shares'
	// devices are hot-plugged after the restore.
	WarmSharePorts = 4
)

// validateWarmDevices: a saved VM takes shares (hot-plugged), but no disks
// and not the host's container storage (its store needs to be set up at
// boot).
func validateWarmDevices(s Spec) []error {
	var errs []error
	if len(s.Disks) > 0 || s.HostStorage != nil {
		errs = append(errs, errors.New("a warm start cannot have disks or the host's container storage: a saved VM cannot take them (only --bind and --ro-bind shares)"))
	}
	if len(s.Binds) > WarmSharePorts {
		errs = append(errs, fmt.Errorf("a warm start takes at most %d shares, not %d", WarmSharePorts, len(s.Binds)))
	}
	return errs
}

// WarmMeta is what a restore needs besides the state: QEMU's command line
// must match the saved one.
type WarmMeta struct {
	Accel             string   `json:"accel"`
	SMBIOSCredentials []string `json:"smbiosCredentials"`
	KernelVersion     string   `json:"kernelVersion"`
	// RootTransport is the root the saved VM ran with; with erofs the saved
	// directory holds its EROFS image as WarmErofsFile.
	RootTransport string `json:"rootTransport,omitempty"`
	// SSHTransport is the SSH transport the saved VM used (empty: tcp); a
	// restore has the same devices.
	SSHTransport string `json:"sshTransport,omitempty"`
	// HotplugPorts is how many empty PCIe root ports the saved VM has for
	// shares (none before warm starts took shares).
	HotplugPorts int `json:"hotplugPorts,omitempty"`
}

// maxWarmMeta bounds meta.json: it holds a few credentials.
const maxWarmMeta = 1 << 20

var kernelVersionRE = regexp.MustCompile(`^[A-Za-z0-9._+~-]{1,128}$`)

// ReadWarmMeta reads and checks dir's meta.json. What it says goes onto
// QEMU's command line, so it must be exactly what bcvk writes.
func ReadWarmMeta(dir string) (WarmMeta, error) {
	var m WarmMeta
	f, err := os.Open(filepath.Join(dir, WarmMetaFile))
	if err != nil {
		return m, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxWarmMeta+1))
	if err != nil {
		return m, err
	}
	if len(b) > maxWarmMeta {
		return m, fmt.Errorf("%s is larger than %d bytes", WarmMetaFile, maxWarmMeta)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, err
	}
	return m, m.Validate()
}

// Validate checks every field against what bcvk itself would write.
func (m WarmMeta) Validate() error {
	if m.Accel != AccelKVM && m.Accel != AccelTCG {
		return fmt.Errorf("saved accelerator %.20q is neither kvm nor tcg", m.Accel)
	}
	if m.RootTransport != "" && m.RootTransport != RootVirtiofs && m.RootTransport != RootErofs {
		return fmt.Errorf("saved root transport %.20q is neither virtiofs nor erofs", m.RootTransport)
	}
	if m.SSHTransport != "" && m.SSHTransport != TransportTCP && m.SSHTransport != TransportVsock {
		return fmt.Errorf("saved SSH transport %.20q is neither vsock nor tcp", m.SSHTransport)
	}
	if m.HotplugPorts < 0 || m.HotplugPorts > 8 {
		return fmt.Errorf("%d saved hot-plug ports: bcvk saves at most 8", m.HotplugPorts)
	}
	if !kernelVersionRE.MatchString(m.KernelVersion) {
		return fmt.Errorf("saved kernel version %.60q is not a kernel version", m.KernelVersion)
	}
	if len(m.SMBIOSCredentials) > 16 {
		return fmt.Errorf("%d saved credentials: bcvk saves at most 16", len(m.SMBIOSCredentials))
	}
	for _, v := range m.SMBIOSCredentials {
		if err := credential.ValidSMBIOS(v); err != nil {
			return fmt.Errorf("saved credential: %w", err)
		}
	}
	return nil
}

// Write stores meta.json in dir; it is written last, so its presence says
// the directory is complete.
func (m WarmMeta) Write(dir string) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, WarmMetaFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, WarmMetaFile))
}
