package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ssh itself reads the entry back with the same values, whatever the
// paths hold: spaces, "%" (ssh's token character), "#".
func TestSSHConfigQuoted(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client")
	}
	dir := "/run/user/1000/my vms/%h #1/dev-1"
	conf, err := SSHConfig("/opt/pod man/podman", "dev", "root", dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ssh", "-G", "-F", path, "dev").CombinedOutput()
	if err != nil {
		t.Fatalf("ssh -G: %v\n%s\n%s", err, out, conf)
	}
	// ssh -G prints values before token expansion, in which "%%" is a
	// literal "%".
	for _, want := range []string{
		"identityfile " + strings.ReplaceAll(dir, "%", "%%") + "/ssh_key\n",
		"proxycommand '/opt/pod man/podman' exec -i dev bcvk-inner proxy ssh\n",
		"user root\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ssh -G lacks %q:\n%s\nconfig:\n%s", want, out, conf)
		}
	}
}

func TestSSHConfigRefusesUnquotable(t *testing.T) {
	for _, dir := range []string{`/run/a"b`, "/run/a\nHost *\n  ProxyCommand evil", `/run/a\b`} {
		if _, err := SSHConfig("/usr/bin/podman", "dev", "root", dir); err == nil {
			t.Errorf("%q accepted", dir)
		}
	}
}
