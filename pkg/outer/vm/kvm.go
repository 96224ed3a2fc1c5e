package vm

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/bcvk/bcvk/pkg/outer/privdir"
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

// ResolveAccel turns auto into tcg when KVM was found unusable earlier in
// this host boot, and says so.
func (r *Runtime) ResolveAccel(sp *spec.Spec) {
	if sp.Accel != spec.AccelAuto {
		return
	}
	base, err := r.Host.StateBase()
	if err != nil {
		return
	}
	reason, failed := r.Host.verdictIn(base)
	if !failed {
		return
	}
	logrus.Infof("KVM did not work on this host earlier (%s); using TCG software emulation. Remove %s to try KVM again.", reason, filepath.Join(base, kvmVerdictFile))
	sp.Accel = spec.AccelTCG
}

// RememberKVMUnusable records that KVM failed on this host boot. The file
// is written whole under a fresh random name, never through a symlink, and
// renamed into place (rename replaces a symlink, not its target).
func (h Host) RememberKVMUnusable(reason string) {
	base, err := h.StateBase()
	if err != nil {
		return
	}
	b, _ := json.Marshal(kvmVerdict{BootID: h.BootID, Reason: reason, Time: time.Now().UTC()})
	tmp := "." + kvmVerdictFile + "-" + rand.Text()
	f, err := privdir.CreateFile(base, tmp, 0o600)
	if err != nil {
		return
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(filepath.Join(base, tmp), filepath.Join(base, kvmVerdictFile))
	}
	if err != nil {
		_ = os.Remove(filepath.Join(base, tmp))
	}
}

// maxVerdictSize bounds the read: the file is a small JSON object.
const maxVerdictSize = 64 << 10

// KVMVerdict returns why KVM failed earlier in this host boot, if it did.
func (h Host) KVMVerdict() (reason string, failed bool) {
	base, err := h.StateBase()
	if err != nil {
		return "", false
	}
	return h.verdictIn(base)
}

// verdictIn reads the verdict in base, never through a symlink.
func (h Host) verdictIn(base string) (reason string, failed bool) {
	b, err := privdir.ReadFile(base, kvmVerdictFile, maxVerdictSize)
	if err != nil {
		return "", false
	}
	var v kvmVerdict
	if json.Unmarshal(b, &v) != nil || v.BootID == "" || v.BootID != h.BootID {
		return "", false
	}
	return v.Reason, true
}
