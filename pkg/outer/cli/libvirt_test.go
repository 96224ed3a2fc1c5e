package cli

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bcvk/bcvk/pkg/outer/libvirt/conn"
	"github.com/bcvk/bcvk/pkg/outer/libvirt/vms"
)

func TestParsePortMap(t *testing.T) {
	for in, want := range map[string]vms.Port{"8080:80": {Host: 8080, Guest: 80}, "1:65535": {Host: 1, Guest: 65535}} {
		got, err := parsePortMap(in)
		if err != nil || got != want {
			t.Errorf("parsePortMap(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"80", "0:80", "80:0", "65536:1", "a:b", ":80", "80:", "8080:80:1", "-1:80"} {
		if _, err := parsePortMap(in); err == nil || !strings.Contains(err.Error(), "HOST_PORT:GUEST_PORT") {
			t.Errorf("parsePortMap(%q): want a usage error, got %v", in, err)
		}
	}
}

func TestParseLibvirtBind(t *testing.T) {
	b, err := parseLibvirtBind("/srv/x:/var/data", true, false)
	if err != nil || b != (vms.Bind{Host: "/srv/x", Guest: "/var/data", ReadOnly: true}) {
		t.Errorf("parseLibvirtBind: %+v, %v", b, err)
	}
	if b, err := parseLibvirtBind("rel:/g", false, false); err != nil || !strings.HasSuffix(b.Host, "/rel") || !strings.HasPrefix(b.Host, "/") {
		t.Errorf("a relative host directory is made absolute: %+v, %v", b, err)
	}
	for _, in := range []string{"", "/x", "/x:", ":/y"} {
		if _, err := parseLibvirtBind(in, false, false); err == nil {
			t.Errorf("parseLibvirtBind(%q): want an error", in)
		}
	}
	if _, err := parseLibvirtBind("rel:/g", false, true); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("a relative directory on a remote host: %v", err)
	}
	if _, err := parseLibvirtBind("/x", true, false); err == nil || !strings.Contains(err.Error(), "--ro-bind") {
		t.Errorf("the error names the flag: %v", err)
	}
}

func TestDefaultVMName(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9-]+-[0-9a-f]{6}$`)
	for in, prefix := range map[string]string{
		"localhost/bcvk-sample-bootc:latest":         "bcvk-sample-bootc-",
		"quay.io/centos-bootc/centos-bootc:stream10": "centos-bootc-",
		"registry/x@sha256:0123":                     "x-",
		"weird/na me!":                               "na-me-",
		"/":                                          "vm-",
		"a/" + strings.Repeat("l", 80) + ":t":        strings.Repeat("l", 40) + "-",
	} {
		got := defaultVMName(in)
		if !strings.HasPrefix(got, prefix) || !re.MatchString(got) {
			t.Errorf("defaultVMName(%q) = %q, want prefix %q", in, got, prefix)
		}
	}
}

func TestHasKargAndLabels(t *testing.T) {
	if !hasKarg([]string{"quiet", "console=tty0"}, "console") || hasKarg([]string{"consoleblank=0"}, "console") {
		t.Error("hasKarg matches keys, not prefixes")
	}
	have := map[string]string{"a": "1", "b": "2"}
	if !hasLabels(have, nil) || !hasLabels(have, map[string]string{"a": "1"}) || hasLabels(have, map[string]string{"a": "2"}) || hasLabels(have, map[string]string{"c": "1"}) {
		t.Error("hasLabels: all wanted labels must match")
	}
}

// --itype sets both sizes; --memory and --vcpus win, as in ephemeral VMs.
func TestLibvirtSizeItypePrecedence(t *testing.T) {
	for _, tc := range []struct {
		f     libvirtRunFlags
		mem   uint64
		vcpus uint
	}{
		{libvirtRunFlags{}, 2048, 2},
		{libvirtRunFlags{itype: "u1.large"}, 8192, 2},
		{libvirtRunFlags{itype: "u1.medium", vcpus: 2}, 4096, 2},
		{libvirtRunFlags{itype: "u1.large", memory: "3G"}, 3072, 2},
		{libvirtRunFlags{itype: "u1.xlarge", memory: "1024", vcpus: 1}, 1024, 1},
		{libvirtRunFlags{memory: "4G", vcpus: 3}, 4096, 3},
	} {
		mem, vcpus, err := libvirtSize(tc.f)
		if err != nil || mem != tc.mem || vcpus != tc.vcpus {
			t.Errorf("%+v: %d MiB, %d vCPUs, %v; want %d MiB, %d vCPUs", tc.f, mem, vcpus, err, tc.mem, tc.vcpus)
		}
	}
	if _, _, err := libvirtSize(libvirtRunFlags{itype: "u9.huge"}); err == nil || !strings.Contains(err.Error(), "--itype help") {
		t.Errorf("an unknown --itype: %v", err)
	}
}

func TestLibvirtDisks(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "data.img")
	if err := os.WriteFile(raw, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	local, _ := conn.ParseURI("qemu:///system")
	loopSSH, _ := conn.ParseURI("qemu+ssh://root@127.0.0.1/system")
	remote, _ := conn.ParseURI("qemu+ssh://root@server.example/system")

	disks, swap, err := libvirtDisks(libvirtRunFlags{diskFiles: []string{raw + ":data:raw:ro"}, swap: "512M"}, local)
	if err != nil || len(disks) != 1 || swap != 512<<20 {
		t.Fatalf("libvirtDisks: %+v, %d, %v", disks, swap, err)
	}
	if d := disks[0]; d.Host != raw || d.Serial != "data" || d.Format != "raw" || !d.ReadOnly {
		t.Errorf("disk file: %+v", d)
	}
	// A loopback URI is this machine too.
	if disks, _, err := libvirtDisks(libvirtRunFlags{diskFiles: []string{raw}}, loopSSH); err != nil || disks[0].Serial != "data" || disks[0].Format != "raw" {
		t.Errorf("over qemu+ssh to 127.0.0.1: %+v, %v", disks, err)
	}
	// A remote host: swap works (a pool volume), disk files do not.
	if _, swap, err := libvirtDisks(libvirtRunFlags{swap: "1G"}, remote); err != nil || swap != 1<<30 {
		t.Errorf("swap on a remote host: %d, %v", swap, err)
	}
	for _, tc := range []struct {
		f    libvirtRunFlags
		u    conn.URI
		want string
	}{
		{libvirtRunFlags{diskFiles: []string{raw}}, remote, "must be on the libvirt host"},
		{libvirtRunFlags{diskFiles: []string{filepath.Join(dir, "missing.img")}}, local, "no such file"},
		{libvirtRunFlags{diskFiles: []string{raw + ":data:qcow2"}}, local, "not a qcow2 file"},
		{libvirtRunFlags{diskFiles: []string{raw + ":a", raw + ":a"}}, local, "used twice"},
		{libvirtRunFlags{diskFiles: []string{raw + ":bcvk-swap"}}, local, "--add-swap's"},
		{libvirtRunFlags{swap: "1k"}, local, "between 1M and 1T"},
		{libvirtRunFlags{swap: "lots"}, remote, "--add-swap"},
	} {
		_, _, err := libvirtDisks(tc.f, tc.u)
		var ue usageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v on %s: %v; want a usage error with %q", tc.f, tc.u.String(), err, tc.want)
		}
	}
}

// bcvk libvirt run --itype help lists the types and exits 0 without an IMAGE.
func TestLibvirtItypeHelp(t *testing.T) {
	code, out, errs := run("libvirt", "run", "--itype", "help")
	if code != 0 || !strings.Contains(out, "u1.medium") || !strings.Contains(out, "VCPUS") {
		t.Errorf("libvirt run --itype help: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// The new options' bad input is refused before podman or libvirt is asked.
func TestLibvirtRunOptionsUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"libvirt", "--connect", "qemu+ssh://root@server.example/system", "run", "--mount-disk-file", "/etc/hostname", "img"}, "remote libvirt host are not supported yet"},
		{[]string{"libvirt", "run", "--mount-disk-file", "/nonexistent/disk.img", "img"}, "no such file"},
		{[]string{"libvirt", "run", "--add-swap", "1k", "img"}, "--add-swap 1k"},
		{[]string{"libvirt", "run", "--itype", "u9.huge", "img"}, "--itype help lists them"},
	} {
		code, out, errs := run(tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}
}
