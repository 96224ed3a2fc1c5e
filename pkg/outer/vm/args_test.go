package vm

import (
	"context"
	"encoding/csv"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/spec"
)

func TestPodmanRunArgs(t *testing.T) {
	got, err := PodmanRunArgs(ContainerConfig{
		Name: "vm1", Image: "localhost/img:1", ImageID: "abc123", RunnerImage: "localhost/bcvk-runner:0.1.0",
		RunnerImageID: "def456", MemoryMiB: 2048,
		StateDir: "/run/user/0/bcvk/vm1-x", Version: "0.1.0", KVM: true, NoFile: 20000, NProc: 4096,
		StopTimeout: 30, Labels: map[string]string{"b": "2", "a": "1"}, Owner: "42@boot@7@4026531836",
		Binds: []spec.Bind{{Host: "/srv/rw", GuestPath: "/mnt/rw"}, {Host: "/srv/ro", GuestPath: "/mnt/ro", ReadOnly: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"run", "--detach", "--name", "vm1",
		"--label", "bcvk.ephemeral=1",
		"--label", "bcvk.name=vm1",
		"--label", "bcvk.image=localhost/img:1",
		"--label", "bcvk.version=0.1.0",
		"--label", "bcvk.state-dir=/run/user/0/bcvk/vm1-x",
		"--label", "bcvk.runner-id=def456",
		"--label", "bcvk.owner=42@boot@7@4026531836", "--label", "a=1", "--label", "b=2",
		"--pull=never",
		"--mount", "type=image,source=abc123,destination=/bcvk/image",
		"--mount", "type=bind,source=/run/user/0/bcvk/vm1-x,destination=/bcvk/state",
		"--mount", "type=bind,source=/srv/rw,destination=/bcvk/binds/0",
		"--mount", "type=bind,source=/srv/ro,destination=/bcvk/binds/1,ro=true",
		// 2 GiB guest + 1 GiB for QEMU and virtiofsd + 128 MiB for /run.
		"--memory", "3200m", "--memory-swap", "3200m",
		"--pids-limit", "4096",
		"--tmpfs", "/run:rw,mode=0755,size=128m",
		"--ulimit", "nofile=20000:20000",
		"--ulimit", "nproc=4096:4096",
		"--security-opt", "label=disable",
		"--security-opt", "no-new-privileges",
		"--cap-drop", "KILL,NET_BIND_SERVICE",
		"--stop-timeout", "30",
		"--device", "/dev/kvm",
		"localhost/bcvk-runner:0.1.0",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	for _, a := range got {
		if a == "--privileged" {
			t.Fatal("containers must not be privileged")
		}
	}
}

// Paths go into --mount values, which podman splits with encoding/csv: a
// "," or '"' in a path must not end the path or add options.
func TestPodmanRunArgsQuotesMountPaths(t *testing.T) {
	got, err := PodmanRunArgs(ContainerConfig{
		Name: "vm1", ImageID: "abc123", RunnerImage: "localhost/bcvk-runner:0.1.0", RunnerImageID: "def456",
		StateDir: "/run/user/0/bcvk/a,ro=true", DisksDir: `/srv/"disk".bcvk-1`,
		Binds: []spec.Bind{{Host: "/srv/a=b", GuestPath: "/mnt/x"}, {Host: "/srv/x,y", GuestPath: "/mnt/y", ReadOnly: true}},
		Warm:  &warmPlan{dir: "/home/u/.cache/bcvk/warm/k,rw=true", readOnly: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	var mounts []string
	for i, a := range got {
		if a == "--mount" {
			mounts = append(mounts, got[i+1])
		}
	}
	want := []string{
		"type=image,source=abc123,destination=/bcvk/image",
		`type=bind,"source=/run/user/0/bcvk/a,ro=true",destination=/bcvk/state`,
		"type=bind,source=/srv/a=b,destination=/bcvk/binds/0",
		`type=bind,"source=/srv/x,y",destination=/bcvk/binds/1,ro=true`,
		`type=bind,"source=/srv/""disk"".bcvk-1",destination=/bcvk/disks`,
		`type=bind,"source=/home/u/.cache/bcvk/warm/k,rw=true",destination=/bcvk/warm,ro=true`,
	}
	if !reflect.DeepEqual(mounts, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(mounts, "\n"), strings.Join(want, "\n"))
	}
	// Read back as podman reads them: the sources come back whole.
	sources := []string{"abc123", "/run/user/0/bcvk/a,ro=true", "/srv/a=b", "/srv/x,y", `/srv/"disk".bcvk-1`, "/home/u/.cache/bcvk/warm/k,rw=true"}
	for i, m := range mounts {
		rec, err := csv.NewReader(strings.NewReader(m)).ReadAll()
		if err != nil || len(rec) != 1 {
			t.Fatalf("%s: %v %q", m, err, rec)
		}
		if src, _ := strings.CutPrefix(rec[0][1], "source="); src != sources[i] {
			t.Errorf("%s: source %q, want %q", m, src, sources[i])
		}
	}
}

// A path that a --mount value cannot carry, and a runner reference that
// podman would take for an option, are refused with a clear error.
// --journal FILE: the host file is mounted where bcvk-inner writes it.
func TestPodmanRunArgsJournal(t *testing.T) {
	got, err := PodmanRunArgs(ContainerConfig{
		Name: "vm1", Image: "localhost/img:1", ImageID: "abc123", RunnerImage: "localhost/bcvk-runner:0.1.0",
		RunnerImageID: "def456", StateDir: "/run/user/0/bcvk/vm1-x", Version: "0.1.0", NoFile: 20000, NProc: 4096,
		StopTimeout: 30, JournalFile: "/home/u/vm1,journal.log",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"run", "--detach", "--name", "vm1",
		"--label", "bcvk.ephemeral=1",
		"--label", "bcvk.name=vm1",
		"--label", "bcvk.image=localhost/img:1",
		"--label", "bcvk.version=0.1.0",
		"--label", "bcvk.state-dir=/run/user/0/bcvk/vm1-x",
		"--label", "bcvk.runner-id=def456",
		"--pull=never",
		"--mount", "type=image,source=abc123,destination=/bcvk/image",
		"--mount", "type=bind,source=/run/user/0/bcvk/vm1-x,destination=/bcvk/state",
		"--mount", `type=bind,"source=/home/u/vm1,journal.log",destination=/bcvk/journal`,
		"--pids-limit", "4096",
		"--tmpfs", "/run:rw,mode=0755,size=128m",
		"--ulimit", "nofile=20000:20000",
		"--ulimit", "nproc=4096:4096",
		"--security-opt", "label=disable",
		"--security-opt", "no-new-privileges",
		"--cap-drop", "KILL,NET_BIND_SERVICE",
		"--stop-timeout", "30",
		"localhost/bcvk-runner:0.1.0",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestPodmanRunArgsRefuses(t *testing.T) {
	ok := ContainerConfig{Name: "vm1", ImageID: "abc", RunnerImage: "localhost/r:1", StateDir: "/run/user/0/bcvk/vm1-x"}
	for _, tc := range []struct {
		name string
		edit func(*ContainerConfig)
		want string
	}{
		{"newline in the state dir", func(c *ContainerConfig) { c.StateDir = "/tmp/a\nb" }, "control characters"},
		{"CR LF in a bind", func(c *ContainerConfig) { c.Binds = []spec.Bind{{Host: "/srv/a\r\nb"}} }, "control characters"},
		{"tab in the disks dir", func(c *ContainerConfig) { c.DisksDir = "/srv/a\tb" }, "control characters"},
		{"newline in the journal file", func(c *ContainerConfig) { c.JournalFile = "/tmp/j\n.log" }, "control characters"},
		{"runner that looks like an option", func(c *ContainerConfig) { c.RunnerImage = "--privileged" }, `cannot begin with "-"`},
		{"no runner", func(c *ContainerConfig) { c.RunnerImage = "" }, "runner image"},
	} {
		c := ok
		tc.edit(&c)
		if a, err := PodmanRunArgs(c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, %q; want an error with %q", tc.name, err, a, tc.want)
		}
	}
	if _, err := PodmanRunArgs(ok); err != nil {
		t.Fatal(err)
	}
}

func TestContainerMemoryMiB(t *testing.T) {
	for _, tc := range []struct{ guest, want int }{
		{256, 256 + 1024 + 128},
		{2048, 2048 + 1024 + 128},
		{4096, 4096 + 1024 + 128},
		{16384, 16384 + 4096 + 128}, // a quarter once that is more than 1 GiB
	} {
		if got := ContainerMemoryMiB(tc.guest); got != tc.want {
			t.Errorf("guest %d MiB: limit %d MiB, want %d", tc.guest, got, tc.want)
		}
	}
}

func TestExecSSHArgs(t *testing.T) {
	if got, want := ExecSSHArgs("vm", false, []string{"-p", "2222", "root@127.0.0.1", "true"}),
		[]string{"exec", "-i", "vm", "ssh", "-p", "2222", "root@127.0.0.1", "true"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	if got, want := ExecSSHArgs("vm", true, []string{"root@127.0.0.1"}),
		[]string{"exec", "-i", "-t", "vm", "ssh", "-t", "root@127.0.0.1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
}

func TestCleanupsRunInReverseAndJoinErrors(t *testing.T) {
	var order []int
	var c Cleanups
	c.Add(func(context.Context) error { order = append(order, 1); return errors.New("one") })
	c.Add(func(context.Context) error { order = append(order, 2); return nil })
	c.Add(func(context.Context) error { order = append(order, 3); return errors.New("three") })
	err := c.run(context.Background())
	if !reflect.DeepEqual(order, []int{3, 2, 1}) {
		t.Fatalf("order %v", order)
	}
	if err == nil || err.Error() != "three\none" {
		t.Fatalf("err %v", err)
	}
}

// A cleanup that fails after a signal must still be told: the command's
// own error is then a cancellation, which the CLI does not print.
func TestCleanupErrorSurvivesCancellation(t *testing.T) {
	var c Cleanups
	c.Add(func(context.Context) error { return errors.New("podman rm: container state improper") })
	err := c.Finish(context.Canceled)
	var ce *CleanupError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &ce) || !strings.Contains(ce.Error(), "cleaning up: podman rm") {
		t.Fatalf("err %v", err)
	}
	if err := (Cleanups{}).Finish(context.Canceled); errors.As(err, &ce) {
		t.Fatalf("a clean finish reported %v", err)
	}
}

func TestStateDirIsPrivate(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	d, err := CurrentHost().NewStateDir("vm")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := statMode(d)
	if err != nil || fi != 0o700 {
		t.Fatalf("mode %o, %v", fi, err)
	}
}

func statMode(p string) (uint32, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return uint32(fi.Mode().Perm()), nil
}

func TestPodmanRunArgsPublishAndDiskFiles(t *testing.T) {
	got, err := PodmanRunArgs(ContainerConfig{
		Name: "vm1", Image: "img", ImageID: "abc", RunnerImage: "runner", RunnerImageID: "def",
		StateDir: "/run/s", Version: "1", NoFile: 1024, NProc: 1024, StopTimeout: 30,
		Publish: []spec.Publish{
			{HostIP: "127.0.0.1", HostPort: 8080, GuestPort: 80, Protocol: "tcp"},
			{HostIP: "::1", HostPort: 8443, GuestPort: 443, Protocol: "tcp"},
		},
		AttachedDisks: []spec.AttachedDisk{
			{Host: "/srv/a.qcow2", Serial: "a", Format: "qcow2"},
			{Host: "/srv/b.img", Serial: "b", Format: "raw", ReadOnly: true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(got, " ")
	for _, w := range []string{
		"--label bcvk.publish=127.0.0.1:8080:80/tcp,[::1]:8443:443/tcp",
		"--mount type=bind,source=/srv/a.qcow2,destination=/bcvk/attached/disk0 ",
		"--mount type=bind,source=/srv/b.img,destination=/bcvk/attached/disk1,ro=true",
		"--publish 127.0.0.1:8080:30000/tcp --publish [::1]:8443:30001/tcp runner",
	} {
		if !strings.Contains(s, w) {
			t.Errorf("missing %q in\n%s", w, s)
		}
	}
	if _, err := PodmanRunArgs(ContainerConfig{Name: "vm1", RunnerImage: "runner", StateDir: "/run/s", NoNetwork: true,
		Publish: []spec.Publish{{HostIP: "127.0.0.1", HostPort: 8080, GuestPort: 80, Protocol: "tcp"}}}); err == nil {
		t.Error("ports were published without a network")
	}
	if _, err := PodmanRunArgs(ContainerConfig{Name: "vm1", RunnerImage: "runner", StateDir: "/run/s",
		AttachedDisks: []spec.AttachedDisk{{Host: "/srv/a\nb.img", Serial: "a", Format: "raw"}}}); err == nil {
		t.Error("a disk file with a newline was mounted")
	}
}
