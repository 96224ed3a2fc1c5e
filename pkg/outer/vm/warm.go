package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/outer/privdir"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
)

// WarmBase is where saved VMs live: $XDG_CACHE_HOME/bcvk/warm, private.
func (h Host) WarmBase() (string, error) { return h.cacheDir("warm", "saved VMs") }

// cacheDir is the private directory $XDG_CACHE_HOME/bcvk/SUB (default
// ~/.cache/bcvk/SUB); what names what is kept there, for errors.
func (h Host) cacheDir(sub, what string) (string, error) {
	dir := h.getenv("XDG_CACHE_HOME")
	if !filepath.IsAbs(dir) { // the XDG spec: a relative path is ignored
		home := h.getenv("HOME")
		if home == "" {
			return "", fmt.Errorf("no place for %s: set XDG_CACHE_HOME or HOME: $HOME is not defined", what)
		}
		dir = filepath.Join(home, ".cache")
	}
	// Checked like StateBase: sudo -E keeps the user's HOME and
	// XDG_CACHE_HOME, and pruneWarm deletes what it finds here.
	base, err := privdir.Ensure(dir, "bcvk/"+sub, 0o700)
	if err != nil {
		return "", fmt.Errorf("%w; bcvk looked there because of XDG_CACHE_HOME or HOME: set XDG_CACHE_HOME to a directory of yours, or as root use sudo -i rather than sudo -E or su without -", err)
	}
	return base, nil
}

// warmKey names a saved VM: everything its state depends on.
func warmKey(ctx context.Context, pc Podman, img *podman.Image, runner, version string, sp spec.Spec) (string, error) {
	r, err := pc.InspectImage(ctx, runner)
	if err != nil {
		return "", err
	}
	b, _ := json.Marshal(struct {
		Version, Runner, Image, Accel string
		MemoryMiB, VCPUs              int
		KernelArgs                    []string
		SSHUser                       string `json:",omitempty"`
		// As asked for (auto may differ by run); virtiofs keeps the keys
		// of VMs saved before there was a choice.
		RootTransport string `json:",omitempty"`
		// The saved VM's devices: its vsock device and network card.
		SSHTransport, Network string `json:",omitempty"`
		// and its empty PCIe root ports for shares,
		HotplugPorts int
		// and the guest's network address (in the saved kernel).
		GuestNet string
		// Whether its journald forwards (a credential read at boot).
		Journal bool
	}{version, r.ID, img.ID, sp.Accel, sp.MemoryMiB, sp.VCPUs, sp.KernelArgs, sp.SSHUser, warmRootKey(sp.RootTransport),
		sp.SSHTransport, sp.Network, spec.WarmSharePorts, spec.GuestNet, sp.Journal != ""})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}

func warmRootKey(t string) string {
	if t == spec.RootVirtiofs {
		return ""
	}
	return t
}

// warmPlan decides between restoring a saved VM and saving a new one.
type warmPlan struct {
	dir      string // mounted at spec.WarmDir
	final    string // where a new save goes when complete ("" on restore)
	readOnly bool
	// erofsFile is the cached EROFS image a save may have run with: a
	// save that did is kept only with its own hard link to it.
	erofsFile string
}

func (r *Runtime) planWarm(ctx context.Context, img *podman.Image, o Config, sp *spec.Spec, cl *Cleanups) (*warmPlan, error) {
	// Binds are not in the key: the saved VM has none, and takes them
	// (hot-plugged) after the restore.
	if o.HostStorage {
		return nil, errors.New("--warm cannot be combined with --bind-storage-ro: a saved VM cannot set up the host's container storage (--bind and --ro-bind work)")
	}
	// The accelerator as asked for: auto may turn into tcg later in the same
	// host boot (a failed KVM attempt is remembered), and the saved VM
	// records what it really ran with.
	ksp := *sp
	ksp.Accel = o.Spec.Accel
	key, err := warmKey(ctx, r.Podman, img, o.RunnerImage, o.Version, ksp)
	if err != nil {
		return nil, err
	}
	base, err := r.Host.WarmBase()
	if err != nil {
		return nil, err
	}
	final := filepath.Join(base, key)
	if _, err := os.Stat(filepath.Join(final, spec.WarmMetaFile)); err == nil {
		now := time.Now()
		_ = os.Chtimes(final, now, now) // most recently used: kept longest
		sp.Warm = spec.WarmRestore
		return &warmPlan{dir: final, readOnly: true}, nil
	}
	tmp, err := os.MkdirTemp(base, "."+key+"-")
	if err != nil {
		return nil, err
	}
	cl.Add(func(context.Context) error { return os.RemoveAll(tmp) })
	sp.Warm = spec.WarmSave
	return &warmPlan{dir: tmp, final: final}, nil
}

// finish keeps a completed save (bcvk-inner writes meta.json last) under
// its key; an incomplete one goes with the cleanups.
func (w *warmPlan) finish() {
	if w == nil || w.final == "" {
		return
	}
	if _, err := os.Stat(filepath.Join(w.dir, spec.WarmMetaFile)); err != nil {
		return
	}
	if err := w.linkErofs(); err != nil {
		logrus.Warnf("could not keep the VM saved for warm starts: %v", err)
		return // the cleanups remove the directory
	}
	_ = os.Rename(w.dir, w.final) // another run may have saved it first: fine
	pruneWarm(filepath.Dir(w.final), maxWarm)
}

// linkErofs gives a save that ran with an EROFS root its own hard link to
// the image (both live under the user's cache directory, on one file
// system): a restore must attach the very bytes the saved guest read,
// whatever the EROFS cache evicts later.
func (w *warmPlan) linkErofs() error {
	m, err := spec.ReadWarmMeta(w.dir)
	if err != nil {
		return err
	}
	if m.RootTransport != spec.RootErofs {
		return nil
	}
	if w.erofsFile == "" {
		return errors.New("the saved VM ran with an EROFS root that bcvk did not offer")
	}
	dst := filepath.Join(w.dir, spec.WarmErofsFile)
	_ = os.Remove(dst)
	if err := os.Link(w.erofsFile, dst); err != nil {
		return fmt.Errorf("linking the EROFS image into the saved VM: %w", err)
	}
	return nil
}

// maxWarm saved VMs are kept (about 220 MB each); the least recently used
// go first.
const maxWarm = 4

func pruneWarm(base string, keep int) {
	if err := privdir.Owned(base); err != nil {
		return // not the private directory WarmBase made: remove nothing in it
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	type saved struct {
		path string
		used time.Time
	}
	var all []saved
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			all = append(all, saved{filepath.Join(base, e.Name()), fi.ModTime()})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.After(all[j].used) })
	for i := keep; i < len(all); i++ {
		if err := privdir.Owned(all[i].path); err == nil {
			_ = os.RemoveAll(all[i].path)
		}
	}
}

// failed drops a saved VM that could not be restored, so that the next
// --warm run boots and saves afresh, and says so.
func (w *warmPlan) failed(err error) error {
	if w == nil || !w.readOnly || err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	if rerr := os.RemoveAll(w.dir); rerr != nil {
		return err
	}
	return fmt.Errorf("%w\nThe saved VM (%s) was removed: the next --warm run boots and saves afresh", err, w.dir)
}

// RemoveWarmCache drops every saved VM (`rm-all --warm-cache`) and returns
// how many there were. Saves still being written (hidden directories) stay
// with the runs that write them.
func (h Host) RemoveWarmCache() (int, error) {
	base, err := h.WarmBase()
	if err != nil {
		return 0, err
	}
	count := func() int {
		entries, _ := os.ReadDir(base)
		n := 0
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				n++
			}
		}
		return n
	}
	before := count()
	pruneWarm(base, 0)
	if left := count(); left > 0 {
		return before - left, fmt.Errorf("%d saved VMs in %s could not be removed", left, base)
	}
	return before, nil
}
