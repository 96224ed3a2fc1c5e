package ephemeral

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/sirupsen/logrus"
)

// A bcvk that owns a container (run-ssh, to-disk) removes it on every exit
// path it sees; SIGKILL it does not see. The owner label names the process
// exactly (PID, host boot, process start time, so a reused PID does not
// count), and the next bcvk removes containers whose owner is gone.

func owner(owned bool) string {
	if !owned {
		return ""
	}
	return ownerOf(os.Getpid())
}

func ownerOf(pid int) string {
	return fmt.Sprintf("%d@%s@%d", pid, bootID(), startTime(pid))
}

// startTime is the process's start time in clock ticks since boot (field 22
// of /proc/PID/stat), or 0 when it is gone.
func startTime(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields count from its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// ownerGone reports whether the owner label names a process that no longer
// runs. Labels it cannot read count as alive: never remove by mistake.
func ownerGone(label string) bool {
	parts := strings.Split(label, "@")
	if len(parts) != 3 {
		return false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 {
		return false
	}
	if parts[1] != bootID() {
		return true // the host rebooted since
	}
	return ownerOf(pid) != label
}

// PruneOrphans removes containers (and state directories) whose owning bcvk
// was killed, and says so.
func PruneOrphans(ctx context.Context, pc *podman.Client) error {
	cs, err := pc.List(ctx, spec.LabelOwner)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		if !ownerGone(c.Labels[spec.LabelOwner]) {
			continue
		}
		if err := removeOrphan(ctx, pc, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
