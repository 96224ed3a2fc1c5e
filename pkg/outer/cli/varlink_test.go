package cli

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bcvk/bcvk/pkg/outer/images"
	"github.com/bcvk/bcvk/pkg/outer/varlink"
	"github.com/bcvk/bcvk/pkg/outer/vm"
)

func ptr[T any](v T) *T { return &v }

func TestRunArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    varlink.RunParams
		want string
	}{
		{"image only", varlink.RunParams{Image: "localhost/img"}, "--detach -- localhost/img"},
		{"every option", varlink.RunParams{Image: "-odd", Opts: &varlink.RunOpts{
			SSHKeygen: ptr(true), Name: ptr("dev"), Label: []string{"a=1", "b=2"}, Network: ptr("none"),
			Rm: ptr(true), Itype: ptr("u1.small"), Memory: ptr("4G"), VCPUs: ptr(2), Console: ptr(true),
			Bind: []string{"/src:/mnt/src"}, RoBind: []string{"/ro"}, MountDiskFiles: []string{"d.img:data"},
			Kargs: []string{"-x", "quiet"}, AddSwap: ptr("1G"),
		}}, "--detach --name=dev --label=a=1 --label=b=2 --network=none --rm --itype=u1.small --memory=4G --vcpus=2 " +
			"--bind=/src:/mnt/src --ro-bind=/ro --mount-disk-file=d.img:data --karg=-x --karg=quiet --add-swap=1G -- -odd"},
		{"rm false", varlink.RunParams{Image: "i", Opts: &varlink.RunOpts{Rm: ptr(false)}}, "--detach -- i"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := runArgs(tc.p)
			if err != nil || strings.Join(got, " ") != tc.want {
				t.Errorf("got %q, %v\nwant %s", got, err, tc.want)
			}
		})
	}
	if _, err := runArgs(varlink.RunParams{Image: "i", Opts: &varlink.RunOpts{Env: []string{"A=1"}}}); err == nil || !strings.Contains(err.Error(), "opts.env") {
		t.Errorf("env: %v", err)
	}
	if _, err := runArgs(varlink.RunParams{Image: "i", Opts: &varlink.RunOpts{Itype: ptr("help")}}); err == nil {
		t.Error("itype help was taken")
	}
}

func TestToDiskArgs(t *testing.T) {
	for _, tc := range []struct {
		p    varlink.ToDiskParams
		want string
	}{
		{varlink.ToDiskParams{SourceImage: "img", TargetDisk: "d.raw"}, "-- img d.raw"},
		{varlink.ToDiskParams{SourceImage: "img", TargetDisk: "/x/d", Format: ptr("qcow2"), DiskSize: ptr("10G"),
			Filesystem: ptr("xfs"), RootSize: ptr("8G"), Kargs: []string{"console=ttyS0", "quiet"}},
			"--format=qcow2 --disk-size=10G --filesystem=xfs --root-size=8G --karg=console=ttyS0 --karg=quiet -- img /x/d"},
	} {
		if got := strings.Join(toDiskArgs(tc.p), " "); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

// Bad parameters are refused by the commands' own checks, with their
// messages, before podman is asked.
func TestVarlinkBackendChecksAsTheCommands(t *testing.T) {
	b := &varlinkBackend{g: globals{runnerImage: "r"}, st: Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}}
	ctx := t.Context()
	_, err := b.Run(ctx, varlink.RunParams{Image: "img", Opts: &varlink.RunOpts{Memory: ptr("4Q")}})
	if err == nil || !strings.Contains(err.Error(), `--memory: invalid size "4Q"`) || strings.Contains(err.Error(), "--help") {
		t.Errorf("Run with memory 4Q: %v", err)
	}
	_, err = b.Run(ctx, varlink.RunParams{Image: "img", Opts: &varlink.RunOpts{Itype: ptr("u9.huge")}})
	if err == nil || !strings.Contains(err.Error(), "u9.huge") {
		t.Errorf("Run with itype u9.huge: %v", err)
	}
	_, err = b.ToDisk(ctx, varlink.ToDiskParams{SourceImage: "img", TargetDisk: "/tmp/x.img", Format: ptr("zip")})
	if err == nil || !strings.Contains(err.Error(), "--format") {
		t.Errorf("ToDisk with format zip: %v", err)
	}
	_, err = b.ToDisk(ctx, varlink.ToDiskParams{SourceImage: "img", TargetDisk: "/tmp/x.img", DiskSize: ptr("1M")})
	if err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("ToDisk with disk_size 1M: %v", err)
	}
}

func TestImageRefs(t *testing.T) {
	got := imageRefs([]images.Image{
		{Repository: "localhost/a", Tag: "latest"},
		{Repository: "<none>", Tag: "<none>", ID: "dangling"},
		{Repository: "quay.io/b", Tag: "<none>", Digest: "sha256:abc"},
		{Repository: "localhost/a", Tag: "latest"},
		{Repository: "quay.io/c", Tag: "<none>"},
	})
	if strings.Join(got, " ") != "localhost/a:latest quay.io/b@sha256:abc" {
		t.Errorf("got %q", got)
	}
	if got := imageRefs(nil); got == nil {
		t.Error("no images must be an empty list, not null")
	}
}

func TestFindVMByID(t *testing.T) {
	vms := []vm.VM{{Name: "dev", ID: "0123456789abcdef0123"}, {Name: "web", ID: "fedcba9876543210fedc"}}
	for id, want := range map[string]string{
		"0123456789abcdef0123": "dev", "fedcba987654": "web", "web": "web", "fedcba": "", "nope": "",
	} {
		v := findVMByID(vms, id)
		if (v == nil && want != "") || (v != nil && v.Name != want) {
			t.Errorf("%s: got %+v, want %q", id, v, want)
		}
	}
}

func TestProxyCommandIsSSHConfigs(t *testing.T) {
	conf, err := vm.SSHConfig("/usr/bin/podman", "dev", "root", "/run/bcvk/dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := proxyCommand(conf); got != "/usr/bin/podman exec -i dev bcvk-inner proxy ssh" {
		t.Errorf("got %q from\n%s", got, conf)
	}
}

func TestVarlinkServeNeedsAnAddress(t *testing.T) {
	t.Setenv("LISTEN_FDS", "")
	code, _, errs := run("varlink", "serve")
	if code != 2 || !strings.Contains(errs, "--address unix:PATH") {
		t.Errorf("exit %d, %q", code, errs)
	}
	code, _, errs = run("varlink", "serve", "--address", "tcp:localhost:1")
	if code != 1 || !strings.Contains(errs, "use unix:PATH") {
		t.Errorf("tcp address: exit %d, %q", code, errs)
	}
}

// `bcvk varlink serve --address` answers GetInfo without podman and
// removes its socket when it stops.
func TestVarlinkServeCommand(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "bcvk.sock")
	ctx, cancel := context.WithCancel(t.Context())
	root := NewRootCommand(Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard})
	root.SetArgs([]string{"-q", "varlink", "serve", "--address", "unix:" + sock})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	var c net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if c, err = net.Dial("unix", sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket: %v", err)
		}
	}
	defer c.Close()
	if _, err := c.Write([]byte(`{"method":"org.varlink.service.GetInfo"}` + "\x00")); err != nil {
		t.Fatal(err)
	}
	rep, err := bufio.NewReader(c).ReadString(0)
	if err != nil || !strings.Contains(rep, `"interfaces":["io.bootc.vk.ephemeral","io.bootc.vk.images","io.bootc.vk.todisk","org.varlink.service"]`) {
		t.Errorf("GetInfo: %q, %v", rep, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve ended with %v", err)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket after stop: %v", err)
	}
}
