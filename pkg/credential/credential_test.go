package credential

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestAuthorizedKeyTmpfiles(t *testing.T) {
	got := AuthorizedKeyTmpfiles("ssh-ed25519 AAAA test\n", "root", "core")
	key := base64.StdEncoding.EncodeToString([]byte("ssh-ed25519 AAAA test\n"))
	dropIn := base64.StdEncoding.EncodeToString([]byte("# Written by bcvk at boot: keys for this VM are in /run/bcvk/ssh.\n" +
		"AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys2 /run/bcvk/ssh/authorized_keys.%u\n"))
	want := "d /run/bcvk/ssh 0755 root root -\n" +
		"f+~ /run/bcvk/ssh/authorized_keys.root 0644 root root - " + key + "\n" +
		"f+~ /run/bcvk/ssh/authorized_keys.core 0644 root root - " + key + "\n" +
		"f+~ /etc/ssh/sshd_config.d/00-bcvk.conf 0644 root root - " + dropIn + "\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestUserSysusers(t *testing.T) {
	su, tf := UserSysusers("core", "/bin/bash")
	if su != "u core - \"bcvk SSH user\" /home/core /bin/bash\n" || tf != "d /home/core 0700 core core -\n" {
		t.Fatalf("got %q, %q", su, tf)
	}
}

func TestSMBIOS(t *testing.T) {
	v, err := SMBIOS("tmpfiles.extra", []byte("a,b"))
	if err != nil {
		t.Fatal(err)
	}
	if v != "io.systemd.credential.binary:tmpfiles.extra=YSxi" {
		t.Fatalf("got %q", v)
	}
	if strings.Contains(v[len("io.systemd.credential.binary:"):], ",") {
		t.Fatal("value contains a comma, which QEMU would split")
	}
	if _, err := SMBIOS("bad name", nil); err == nil {
		t.Fatal("want an error for a bad name")
	}
}
