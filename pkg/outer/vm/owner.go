package vm

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

func (h Host) owner(owned bool) string {
	if !owned {
		return ""
	}
	st, _ := procStart(h.Proc, h.PID)
	return fmt.Sprintf("%d@%s@%d@%s", h.PID, h.BootID, st, h.PIDNamespace)
}

// procStart is the process's start time in clock ticks since boot (field
// 22 of /proc/PID/stat). The error wraps fs.ErrNotExist when there is no
// such process, or only its zombie: a killed bcvk whose parent has not
// reaped it yet is gone all the same.
func procStart(proc string, pid int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
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
	proc         string // the proc file system
}

// view is what h knows for judging owners.
func (h Host) view() hostView {
	v := hostView{bootID: h.BootID, pidNS: h.PIDNamespace, uid: h.UID, proc: h.Proc}
	self, err := os.Readlink(filepath.Join(h.Proc, "self"))
	v.procComplete = err == nil && self == strconv.Itoa(h.PID)
	for _, pid := range []int{1, h.PID, os.Getppid()} {
		// Getppid is 0 when our parent is outside our PID namespace.
		if _, err := procStart(h.Proc, pid); pid != 0 && err != nil {
			v.procComplete = false
		}
	}
	if base, err := h.StateBase(); err == nil {
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
	now, err := procStart(v.proc, pid)
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

// verdicts judges containers without changing anything. A container
// judged prune stays prune only with a local podman, which is asked only
// when there is something to prune.
func (r *Runtime) verdicts(ctx context.Context, cs []podman.Container) []verdict {
	v := r.Host.view()
	asked, remote := false, false
	out := make([]verdict, len(cs))
	for i, c := range cs {
		vd := judge(c, v)
		if vd == prune && !asked {
			asked, remote = true, r.Podman.Remote(ctx)
		}
		if vd == prune && remote {
			vd = ownerUnknown
		}
		out[i] = vd
	}
	return out
}

// Pruned is what Prune removed, for the command to report.
type Pruned struct {
	VMs []PrunedVM
}

// PrunedVM is a VM that Prune removed because the bcvk that started it was
// killed.
type PrunedVM struct {
	Name string
	// OwnerPID is the killed bcvk's process ID.
	OwnerPID string
	// StateDirErr is why its state directory could not be removed, if so.
	StateDirErr error
}

// Prune removes the containers (and state directories) whose owning bcvk
// was killed: bcvk made them, and their owner provably died (see judge).
// It removes nothing else. The error says what could not be removed; the
// rest is in Pruned.
func (r *Runtime) Prune(ctx context.Context) (Pruned, error) {
	var p Pruned
	cs, err := r.Podman.List(ctx, spec.LabelOwner)
	if err != nil {
		return p, &listError{err}
	}
	var errs []error
	for i, vd := range r.verdicts(ctx, cs) {
		if vd != prune {
			continue
		}
		c := cs[i]
		// Its error means the container is still there.
		if err := r.Podman.Remove(ctx, c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		p.VMs = append(p.VMs, PrunedVM{
			Name: c.Labels[spec.LabelName], OwnerPID: strings.SplitN(c.Labels[spec.LabelOwner], "@", 2)[0],
			StateDirErr: r.removeStateDir(c.Labels[spec.LabelStateDir]),
		})
	}
	return p, errors.Join(errs...)
}

// Report tells the user what Prune did, as warnings: removing a VM that
// someone started is news. A podman that cannot list containers is left to
// the command's next podman call to report, so that it is said once.
func Report(p Pruned, err error) {
	for _, vm := range p.VMs {
		logrus.Warnf("removed VM %s: the bcvk that started it (pid %s) was killed before it could", vm.Name, vm.OwnerPID)
		if vm.StateDirErr != nil {
			logrus.Warnf("could not remove the state directory of VM %s: %v", vm.Name, vm.StateDirErr)
		}
	}
	var le *listError
	if err != nil && !errors.As(err, &le) {
		logrus.Warnf("could not remove VMs left by a killed bcvk: %v", err)
	}
}

// listError is a failure to list the containers: the command's own next
// call to podman meets it too and reports it, so Report does not.
type listError struct{ err error }

func (e *listError) Error() string { return e.err.Error() }
func (e *listError) Unwrap() error { return e.err }
