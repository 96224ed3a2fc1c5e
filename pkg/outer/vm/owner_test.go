package vm

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcvk/bcvk/pkg/outer/podman"
	"github.com/bcvk/bcvk/pkg/spec"
)

const deadPID = 999999999 // above any pid_max

func TestOwnerLabelNamesThisProcess(t *testing.T) {
	h := CurrentHost()
	if h.owner(false) != "" {
		t.Fatal("unowned container got a label")
	}
	parts := strings.Split(h.owner(true), "@")
	st, err := procStart("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprint(os.Getpid()), h.BootID, fmt.Sprint(st), h.PIDNamespace}
	if !slices.Equal(parts, want) || h.PIDNamespace == "" || h.BootID == "" {
		t.Fatalf("label %q, want %q", parts, want)
	}
}

// ourContainer is a container as Launch makes it, with a real state
// directory in v's state base.
func ourContainer(t *testing.T, v hostView, name, ownerLabel string) podman.Container {
	t.Helper()
	dir, err := os.MkdirTemp(v.stateBase, name+"-")
	if err != nil {
		t.Fatal(err)
	}
	return podman.Container{ID: "id-" + name, Names: []string{name}, ImageID: "runner-sha", State: "running", Labels: map[string]string{
		spec.LabelEphemeral: "1", spec.LabelName: name, spec.LabelStateDir: dir,
		spec.LabelRunnerID: "runner-sha", spec.LabelOwner: ownerLabel,
	}}
}

// Only an owner that provably died, of a container that bcvk provably
// made, leads to removal; everything else is kept or "unknown owner".
func TestJudge(t *testing.T) {
	v := hostView{bootID: "boot", pidNS: "4026531836", procComplete: true, stateBase: t.TempDir(), uid: os.Getuid(), proc: "/proc"}
	me, err := procStart("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("%d@boot@5@4026531836", deadPID)
	elsewhere := t.TempDir()
	for _, tc := range []struct {
		name string
		edit func(c *podman.Container, v *hostView)
		want verdict
	}{
		{"owner died", func(c *podman.Container, v *hostView) {}, prune},
		{"owner runs", func(c *podman.Container, v *hostView) {
			c.Labels[spec.LabelOwner] = fmt.Sprintf("%d@boot@%d@4026531836", os.Getpid(), me)
		}, keep},
		{"PID reused by another process", func(c *podman.Container, v *hostView) {
			c.Labels[spec.LabelOwner] = fmt.Sprintf("%d@boot@%d@4026531836", os.Getpid(), me+1)
		}, prune},
		{"no owner (a detached VM)", func(c *podman.Container, v *hostView) { delete(c.Labels, spec.LabelOwner) }, keep},
		{"labels from the image: runner label is not the container's image", func(c *podman.Container, v *hostView) { c.ImageID = "other-sha" }, ownerUnknown},
		{"no runner label", func(c *podman.Container, v *hostView) { delete(c.Labels, spec.LabelRunnerID) }, ownerUnknown},
		{"no ephemeral label", func(c *podman.Container, v *hostView) { delete(c.Labels, spec.LabelEphemeral) }, ownerUnknown},
		{"name label is not the container's name", func(c *podman.Container, v *hostView) { c.Names = []string{"other"} }, ownerUnknown},
		{"an older bcvk's label", func(c *podman.Container, v *hostView) {
			c.Labels[spec.LabelOwner] = fmt.Sprintf("%d@boot@5", deadPID)
		}, ownerUnknown},
		{"another boot", func(c *podman.Container, v *hostView) { v.bootID = "boot2" }, ownerUnknown},
		{"another PID namespace", func(c *podman.Container, v *hostView) { v.pidNS = "4026532000" }, ownerUnknown},
		{"our namespace unknown", func(c *podman.Container, v *hostView) { v.pidNS = "" }, ownerUnknown},
		{"/proc hides processes", func(c *podman.Container, v *hostView) { v.procComplete = false }, ownerUnknown},
		{"garbage label", func(c *podman.Container, v *hostView) { c.Labels[spec.LabelOwner] = "x@boot@y@4026531836" }, ownerUnknown},
		{"empty label", func(c *podman.Container, v *hostView) { c.Labels[spec.LabelOwner] = "" }, ownerUnknown},
		{"no start time", func(c *podman.Container, v *hostView) {
			c.Labels[spec.LabelOwner] = fmt.Sprintf("%d@boot@0@4026531836", deadPID)
		}, ownerUnknown},
		{"state dir gone", func(c *podman.Container, v *hostView) { os.Remove(c.Labels[spec.LabelStateDir]) }, ownerUnknown},
		{"state dir outside our base", func(c *podman.Container, v *hostView) { c.Labels[spec.LabelStateDir] = elsewhere }, ownerUnknown},
		{"state dir not clean", func(c *podman.Container, v *hostView) {
			d := c.Labels[spec.LabelStateDir]
			c.Labels[spec.LabelStateDir] = filepath.Join(v.stateBase, "x") + "/../" + filepath.Base(d)
		}, ownerUnknown},
		{"state dir is a symlink", func(c *podman.Container, v *hostView) {
			l := filepath.Join(v.stateBase, "link-1")
			if err := os.Symlink(c.Labels[spec.LabelStateDir], l); err != nil {
				t.Fatal(err)
			}
			c.Labels[spec.LabelStateDir] = l
		}, ownerUnknown},
		{"state dir of another user", func(c *podman.Container, v *hostView) { v.uid++ }, ownerUnknown},
		{"owner killed, not yet reaped", func(c *podman.Container, v *hostView) {
			pid, start := zombie(t)
			c.Labels[spec.LabelOwner] = fmt.Sprintf("%d@boot@%s@4026531836", pid, start)
		}, prune},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, vv := ourContainer(t, v, "vm", dead), v
			tc.edit(&c, &vv)
			if got := judge(c, vv); got != tc.want {
				t.Fatalf("verdict %d, want %d", got, tc.want)
			}
		})
	}
}

// zombie returns the PID and start time of a child that has exited and
// is not reaped until the test ends.
func zombie(t *testing.T) (int, string) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Wait() })
	for range 500 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i:]), ") Z") {
			return cmd.Process.Pid, strings.Fields(string(b[i+1:]))[19]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the child did not become a zombie")
	return 0, ""
}

// orphanScene is a state base with four containers: a real orphan, one
// whose image carries bcvk's labels, an older bcvk's, and a detached VM.
func orphanScene(t *testing.T) (*Runtime, *fakePodman) {
	t.Helper()
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	h := CurrentHost()
	v := h.view()
	if !v.procComplete || v.stateBase == "" {
		t.Skip("this /proc hides processes, so nothing is provable here")
	}
	deadHere := fmt.Sprintf("%d@%s@5@%s", deadPID, v.bootID, v.pidNS)
	orphan := ourContainer(t, v, "orphan", deadHere)
	foreign := ourContainer(t, v, "foreign", deadHere)
	foreign.ImageID = "sha-of-an-image-with-bcvk-labels"
	old := ourContainer(t, v, "old", fmt.Sprintf("%d@%s@5", deadPID, v.bootID))
	detached := ourContainer(t, v, "detached", "")
	delete(detached.Labels, spec.LabelOwner)
	pc := &fakePodman{containers: []podman.Container{orphan, foreign, old, detached}}
	return New(pc, h), pc
}

// List changes nothing: the orphan is listed (owner known, so not
// "unknown owner") until Prune removes it; what only looks like an orphan
// is listed as "unknown owner".
func TestListChangesNothing(t *testing.T) {
	rt, pc := orphanScene(t)
	vms, err := rt.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if calls := pc.changes(); len(calls) > 0 {
		t.Fatalf("List changed something: %q", calls)
	}
	got := map[string][2]bool{}
	for _, vm := range vms {
		got[vm.Name] = [2]bool{vm.OwnerUnknown, vm.Orphaned}
	}
	if want := map[string][2]bool{"orphan": {false, true}, "foreign": {true, false}, "old": {true, false}, "detached": {false, false}}; !maps.Equal(got, want) {
		t.Fatalf("listed (name: [owner unknown, orphaned]) %v, want %v", got, want)
	}
	if i := slices.IndexFunc(vms, func(vm VM) bool { return vm.Name == "orphan" }); vms[i].OwnerPID() != fmt.Sprint(deadPID) {
		t.Errorf("the orphan's owner PID: %q, want %d", vms[i].OwnerPID(), deadPID)
	}
	for _, vm := range vms {
		if _, err := os.Stat(vm.StateDir); err != nil {
			t.Errorf("List touched the state directory of %s: %v", vm.Name, err)
		}
	}
}

// Prune removes a real orphan and its state directory, reports it, and
// leaves what only looks like one: a container whose image carries bcvk's
// labels and an older bcvk's container. A remote podman removes nothing.
func TestPruneRemovesOnlyProvableOrphans(t *testing.T) {
	t.Setenv("CONTAINER_HOST", "")
	t.Setenv("CONTAINER_CONNECTION", "")
	rt, pc := orphanScene(t)
	orphanDir := pc.containers[0].Labels[spec.LabelStateDir]
	p, err := rt.Prune(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rm := removals(pc.changes()); !slices.Equal(rm, []string{"rm id-orphan"}) {
		t.Fatalf("removed %q, want only the orphan", rm)
	}
	if len(p.VMs) != 1 || p.VMs[0].Name != "orphan" || p.VMs[0].OwnerPID != fmt.Sprint(deadPID) || p.VMs[0].StateDirErr != nil {
		t.Fatalf("reported %+v", p)
	}
	if _, err := os.Stat(orphanDir); !os.IsNotExist(err) {
		t.Fatalf("the orphan's state directory is still there: %v", err)
	}
	vms, _ := rt.List(t.Context())
	if len(vms) != 3 || slices.ContainsFunc(vms, func(vm VM) bool { return vm.Name == "orphan" }) {
		t.Fatalf("listed after pruning: %+v", vms)
	}

	t.Run("remote podman", func(t *testing.T) {
		rt, pc := orphanScene(t)
		pc.remote = true
		p, err := rt.Prune(t.Context())
		if err != nil || len(p.VMs) > 0 || len(removals(pc.changes())) > 0 {
			t.Fatalf("pruned %+v, %v: %q", p, err, pc.changes())
		}
		vms, _ := rt.List(t.Context())
		i := slices.IndexFunc(vms, func(vm VM) bool { return vm.Name == "orphan" })
		if i < 0 || !vms[i].OwnerUnknown {
			t.Fatalf("listed %+v", vms)
		}
	})
}

// rm-all removes the VMs bcvk made and leaves a container that only
// carries bcvk's labels because its image does.
func TestRemoveAllLeavesContainersWithImageLabels(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	h := CurrentHost()
	v := h.view()
	mine := ourContainer(t, v, "mine", "")
	delete(mine.Labels, spec.LabelOwner)
	foreign := ourContainer(t, v, "foreign", "")
	delete(foreign.Labels, spec.LabelOwner)
	foreign.ImageID = "sha-of-an-image-with-bcvk-labels"
	pc := &fakePodman{containers: []podman.Container{mine, foreign}}
	names, err := New(pc, h).RemoveAll(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rm := removals(pc.changes()); !slices.Equal(names, []string{"mine"}) || !slices.Equal(rm, []string{"rm id-mine"}) {
		t.Fatalf("removed %q (%q), want only mine", names, rm)
	}
}
