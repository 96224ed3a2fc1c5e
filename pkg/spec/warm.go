package spec

import (
	"encoding/json"
	"os"
	"path/filepath"
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
	WarmKeyFile       = "ssh_key"
	WarmMetaFile      = "meta.json"
)

// WarmMeta is what a restore needs besides the state: QEMU's command line
// must match the saved one.
type WarmMeta struct {
	Accel             string   `json:"accel"`
	SMBIOSCredentials []string `json:"smbiosCredentials"`
	KernelVersion     string   `json:"kernelVersion"`
}

// ReadWarmMeta reads dir's meta.json.
func ReadWarmMeta(dir string) (WarmMeta, error) {
	var m WarmMeta
	b, err := os.ReadFile(filepath.Join(dir, WarmMetaFile))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
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
