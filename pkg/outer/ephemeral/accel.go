package ephemeral

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
)

// A failed KVM attempt costs seconds on every boot (nested KVM here fails
// only once the guest runs), so the verdict is kept for the rest of the
// host's uptime, keyed by its boot ID, and --accel auto then goes straight
// to TCG.

const kvmVerdictFile = "kvm-unusable.json"

type kvmVerdict struct {
	BootID string    `json:"bootID"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ResolveAccel turns auto into tcg when KVM was found unusable earlier in
// this host boot, and says so.
func ResolveAccel(sp *spec.Spec) {
	if sp.Accel != spec.AccelAuto {
		return
	}
	base, err := StateBase()
	if err != nil {
		return
	}
	path := filepath.Join(base, kvmVerdictFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var v kvmVerdict
	if json.Unmarshal(b, &v) != nil || v.BootID == "" || v.BootID != bootID() {
		return
	}
	logrus.Infof("KVM did not work on this host earlier (%s); using TCG software emulation. Remove %s to try KVM again.", v.Reason, path)
	sp.Accel = spec.AccelTCG
}

// RememberKVMUnusable records that KVM failed on this host boot.
func RememberKVMUnusable(reason string) {
	base, err := StateBase()
	if err != nil {
		return
	}
	b, _ := json.Marshal(kvmVerdict{BootID: bootID(), Reason: reason, Time: time.Now().UTC()})
	tmp := filepath.Join(base, kvmVerdictFile+".tmp")
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, filepath.Join(base, kvmVerdictFile))
	}
}

// KVMVerdict returns why KVM failed earlier in this host boot, if it did.
func KVMVerdict() (reason string, failed bool) {
	base, err := StateBase()
	if err != nil {
		return "", false
	}
	b, err := os.ReadFile(filepath.Join(base, kvmVerdictFile))
	if err != nil {
		return "", false
	}
	var v kvmVerdict
	if json.Unmarshal(b, &v) != nil || v.BootID == "" || v.BootID != bootID() {
		return "", false
	}
	return v.Reason, true
}
