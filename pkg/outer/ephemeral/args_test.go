package ephemeral

import (
	"context"
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/bcvk/bcvk/pkg/spec"
)

func TestPodmanRunArgs(t *testing.T) {
	got := PodmanRunArgs(ContainerConfig{
		Name: "vm1", Image: "localhost/img:1", ImageID: "abc123", RunnerImage: "localhost/bcvk-runner:0.1.0",
		StateDir: "/run/user/0/bcvk/vm1-x", Version: "0.1.0", KVM: true, NoFile: 20000, NProc: 4096,
		StopTimeout: 30, Labels: map[string]string{"b": "2", "a": "1"}, Owner: "42@boot@7",
		Binds: []spec.Bind{{Host: "/srv/rw", GuestPath: "/mnt/rw"}, {Host: "/srv/ro", GuestPath: "/mnt/ro", ReadOnly: true}},
	})
	want := []string{
		"run", "--detach", "--name", "vm1",
		"--label", "bcvk.ephemeral=1",
		"--label", "bcvk.name=vm1",
		"--label", "bcvk.image=localhost/img:1",
		"--label", "bcvk.version=0.1.0",
		"--label", "bcvk.state-dir=/run/user/0/bcvk/vm1-x",
		"--label", "bcvk.owner=42@boot@7", "--label", "a=1", "--label", "b=2",
		"--pull=never",
		"--mount", "type=image,source=abc123,destination=/bcvk/image",
		"--mount", "type=bind,source=/run/user/0/bcvk/vm1-x,destination=/bcvk/state",
		"--mount", "type=bind,source=/srv/rw,destination=/bcvk/binds/0",
		"--mount", "type=bind,source=/srv/ro,destination=/bcvk/binds/1,ro=true",
		"--tmpfs", "/run:rw,mode=0755",
		"--ulimit", "nofile=20000:20000",
		"--ulimit", "nproc=4096:4096",
		"--security-opt", "label=disable",
		"--security-opt", "no-new-privileges",
		"--cap-drop", "KILL,NET_BIND_SERVICE,SYS_CHROOT",
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

func TestStateDirIsPrivate(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	d, err := NewStateDir("vm")
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
