package ephemeral

import (
	"encoding/json"
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
	if owner(false) != "" {
		t.Fatal("unowned container got a label")
	}
	parts := strings.Split(owner(true), "@")
	st, err := procStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprint(os.Getpid()), bootID(), fmt.Sprint(st), pidNamespace()}
	if !slices.Equal(parts, want) || pidNamespace() == "" {
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
	v := hostView{bootID: "boot", pidNS: "4026531836", procComplete: true, stateBase: t.TempDir(), uid: os.Getuid()}
	me, err := procStart(os.Getpid())
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

// fakePodman is a podman that prints containers for ps and info, and
// logs every call.
func fakePodman(t *testing.T, cs []podman.Container, remote bool) (*podman.Client, func() []string) {
	t.Helper()
	dir := t.TempDir()
	ps, _ := json.Marshal(cs)
	info := fmt.Sprintf(`{"host":{"serviceIsRemote":%t}}`, remote)
	for name, body := range map[string]string{"ps.json": string(ps), "info.json": info} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	script := `#!/bin/sh
d=$(dirname "$0")
echo "$*" >> "$d/log"
case "$1" in
ps) cat "$d/ps.json" ;;
info) cat "$d/info.json" ;;
esac
`
	bin := filepath.Join(dir, "podman")
	if err := os.WriteFile(bin, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return &podman.Client{Binary: bin}, func() []string {
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
}

func removals(calls []string) []string {
	var rm []string
	for _, c := range calls {
		if strings.HasPrefix(c, "rm ") {
			rm = append(rm, c)
		}
	}
	return rm
}

// `bcvk ephemeral ps` removes a real orphan and lists, as "unknown owner",
// what only looks like one: a container whose image carries bcvk's labels
// and an older bcvk's container. A remote podman removes nothing.
func TestListRemovesOnlyProvableOrphans(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv("CONTAINER_HOST", "")
	t.Setenv("CONTAINER_CONNECTION", "")
	v := currentView()
	if !v.procComplete || v.stateBase == "" {
		t.Skip("this /proc hides processes, so nothing is provable here")
	}
	// Fresh each time: removing the orphan removes its state directory.
	containers := func() []podman.Container {
		deadHere := fmt.Sprintf("%d@%s@5@%s", deadPID, v.bootID, v.pidNS)
		orphan := ourContainer(t, v, "orphan", deadHere)
		foreign := ourContainer(t, v, "foreign", deadHere)
		foreign.ImageID = "sha-of-an-image-with-bcvk-labels"
		old := ourContainer(t, v, "old", fmt.Sprintf("%d@%s@5", deadPID, v.bootID))
		detached := ourContainer(t, v, "detached", "")
		delete(detached.Labels, spec.LabelOwner)
		return []podman.Container{orphan, foreign, old, detached}
	}

	pc, calls := fakePodman(t, containers(), false)
	vms, err := List(t.Context(), pc)
	if err != nil {
		t.Fatal(err)
	}
	if rm := removals(calls()); !slices.Equal(rm, []string{"rm --force --ignore --time 0 -- id-orphan"}) {
		t.Fatalf("removed %q, want only the orphan", rm)
	}
	got := map[string]bool{}
	for _, vm := range vms {
		got[vm.Name] = vm.OwnerUnknown
	}
	if want := map[string]bool{"foreign": true, "old": true, "detached": false}; !maps.Equal(got, want) {
		t.Fatalf("listed (name: owner unknown) %v, want %v", got, want)
	}

	for _, tc := range []struct {
		name   string
		env    string
		remote bool
	}{{"CONTAINER_HOST", "CONTAINER_HOST", false}, {"CONTAINER_CONNECTION", "CONTAINER_CONNECTION", false}, {"remote in containers.conf", "", true}} {
		t.Run("remote podman: "+tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(tc.env, "x")
			}
			pc, calls := fakePodman(t, containers(), tc.remote)
			vms, err := List(t.Context(), pc)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(vms, func(vm VM) bool { return vm.Name == "orphan" })
			if rm := removals(calls()); len(rm) > 0 || i < 0 || !vms[i].OwnerUnknown {
				t.Fatalf("removed %q; listed %+v", rm, vms)
			}
		})
	}
}

// rm-all removes the VMs bcvk made and leaves a container that only
// carries bcvk's labels because its image does.
func TestRemoveAllLeavesContainersWithImageLabels(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	v := currentView()
	mine := ourContainer(t, v, "mine", "")
	delete(mine.Labels, spec.LabelOwner)
	foreign := ourContainer(t, v, "foreign", "")
	delete(foreign.Labels, spec.LabelOwner)
	foreign.ImageID = "sha-of-an-image-with-bcvk-labels"
	pc, calls := fakePodman(t, []podman.Container{mine, foreign}, false)
	names, err := RemoveAll(t.Context(), pc)
	if err != nil {
		t.Fatal(err)
	}
	if rm := removals(calls()); !slices.Equal(names, []string{"mine"}) || !slices.Equal(rm, []string{"rm --force --ignore --time 0 -- id-mine"}) {
		t.Fatalf("removed %q (%q), want only mine", names, rm)
	}
}
