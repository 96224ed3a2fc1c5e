package cli

import (
	"regexp"
	"strings"
	"testing"

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
