package ephemeral

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
)

// A bcvk that owns a container (run-ssh, to-disk) removes it on every exit
// path it sees; SIGKILL it does not see. The owner label names the process
// exactly (PID, host boot, process start time, so a reused PID does not
// count, and PID namespace, in which the PID means something), and the next
// bcvk removes containers whose owner provably died. Anything it cannot
// prove (a label an image set, another PID namespace or boot, a remote
// podman, a /proc that hides processes) is listed as "unknown owner" and
// left alone: removing a stranger's VM is worse than leaving an orphan.

func owner(owned bool) string {
	if !owned {
		return ""
	}
	return ownerOf(os.Getpid())
}

func ownerOf(pid int) string {
	st, _ := procStart(pid)
	return fmt.Sprintf("%d@%s@%d@%s", pid, bootID(), st, pidNamespace())
}

// pidNamespace is the inode of our PID namespace, or "" when unknown.
func pidNamespace() string {
	l, err := os.Readlink("/proc/self/ns/pid") // "pid:[4026531836]"
	if err != nil || !strings.HasPrefix(l, "pid:[") || !strings.HasSuffix(l, "]") {
		return ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(l, "pid:["), "]")
}

// procStart is the process's start time in clock ticks since boot (field
// 22 of /proc/PID/stat). The error wraps fs.ErrNotExist when there is no
// such process, or only its zombie: a killed bcvk whose parent has not
// reaped it yet is gone all the same.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if errors.Is(err, syscall.ESRCH) { // the process ended while read
			err = fs.ErrNotExist
		}
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields count from its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("process %d has ended: %w", pid, fs.ErrNotExist)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// hostView is what this process knows about the host when it judges
// owners: a bcvk.owner label is only comparable when it was written on the
// same boot, in the same PID namespace, and /proc shows that namespace.
type hostView struct {
	bootID, pidNS string
	// procComplete says /proc is our PID namespace's and hides nothing:
	// /proc/self is us and PID 1 and our parent can be read (hidepid or a
	// /proc of another namespace would make a live owner look dead).
	procComplete bool
	stateBase    string // where our state directories are
	uid          int
}

func currentView() hostView {
	v := hostView{bootID: bootID(), pidNS: pidNamespace(), uid: os.Getuid()}
	self, err := os.Readlink("/proc/self")
	v.procComplete = err == nil && self == strconv.Itoa(os.Getpid())
	for _, pid := range []int{1, os.Getpid(), os.Getppid()} {
		// Getppid is 0 when our parent is outside our PID namespace.
		if _, err := procStart(pid); pid != 0 && err != nil {
			v.procComplete = false
		}
	}
	if base, err := StateBase(); err == nil {
		v.stateBase = base
	}
	return v
}

// verdict is what bcvk may do with a container.
type verdict int

const (
	keep         verdict = iota // no owner, or its owner runs: leave it
	prune                       // ours, and its owner provably died
	ownerUnknown                // has an owner label we cannot judge: leave it
)

// madeByBcvk reports whether a container carries bcvk's labels, set by
// bcvk rather than by its image: the runner ID label must be the
// container's own image ID, which no image can name in its labels.
func madeByBcvk(c podman.Container) bool {
	l := c.Labels
	return l[spec.LabelEphemeral] == "1" && l[spec.LabelName] != "" && len(c.Names) > 0 && c.Names[0] == l[spec.LabelName] &&
		l[spec.LabelRunnerID] != "" && l[spec.LabelRunnerID] == c.ImageID
}

// ourStateDir reports whether dir is a real directory (not a symlink) of
// ours in our state base.
func ourStateDir(dir string, v hostView) bool {
	if dir == "" || v.stateBase == "" || filepath.Clean(dir) != dir || filepath.Dir(dir) != v.stateBase {
		return false
	}
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == v.uid
}

// judge decides about one container. It reads /proc and the state
// directory, and never changes anything.
func judge(c podman.Container, v hostView) verdict {
	label, ok := c.Labels[spec.LabelOwner]
	if !ok {
		return keep
	}
	if !madeByBcvk(c) || !ourStateDir(c.Labels[spec.LabelStateDir], v) {
		return ownerUnknown
	}
	parts := strings.Split(label, "@")
	if len(parts) != 4 || v.bootID == "" || v.pidNS == "" || !v.procComplete ||
		parts[1] != v.bootID || parts[3] != v.pidNS {
		return ownerUnknown // an older bcvk's label, another boot or namespace
	}
	pid, err := strconv.Atoi(parts[0])
	start, serr := strconv.ParseUint(parts[2], 10, 64)
	if err != nil || serr != nil || pid <= 0 || start == 0 {
		return ownerUnknown
	}
	now, err := procStart(pid)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return prune
	case err != nil:
		return ownerUnknown
	case now != start:
		return prune // the PID is another process's now
	}
	return keep
}

// sweep judges containers, removes the orphans among them and returns the
// others with their verdicts. It asks podman whether it is remote only
// when there is something to remove.
func sweep(ctx context.Context, pc *podman.Client, cs []podman.Container) ([]podman.Container, []verdict, error) {
	v := currentView()
	asked, remote := false, false
	var kept []podman.Container
	var verdicts []verdict
	var errs []error
	for _, c := range cs {
		vd := judge(c, v)
		if vd == prune && !asked {
			asked, remote = true, pc.Remote(ctx)
		}
		if vd == prune && remote {
			vd = ownerUnknown
		}
		if vd == prune {
			err := removeOrphan(ctx, pc, c)
			if err == nil {
				continue
			}
			errs = append(errs, err)
		}
		kept = append(kept, c)
		verdicts = append(verdicts, vd)
	}
	return kept, verdicts, errors.Join(errs...)
}

// PruneOrphans removes containers (and state directories) whose owning bcvk
// was killed, and says so.
func PruneOrphans(ctx context.Context, pc *podman.Client) error {
	cs, err := pc.List(ctx, spec.LabelOwner)
	if err != nil {
		return err
	}
	_, _, err = sweep(ctx, pc, cs)
	return err
}

// removeOrphan removes a container left by a killed bcvk, and its state
// directory, and says so. Its error means the container is still there.
func removeOrphan(ctx context.Context, pc *podman.Client, c podman.Container) error {
	if err := pc.Remove(ctx, c.ID); err != nil {
		return err
	}
	logrus.Warnf("removed VM %s: the bcvk that started it (pid %s) was killed before it could", c.Labels[spec.LabelName], strings.SplitN(c.Labels[spec.LabelOwner], "@", 2)[0])
	if err := removeStateDir(c.Labels[spec.LabelStateDir]); err != nil {
		logrus.Warnf("could not remove the state directory of VM %s: %v", c.Labels[spec.LabelName], err)
	}
	return nil
}
