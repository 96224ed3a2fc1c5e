package credential

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestAuthorizedKeyTmpfiles(t *testing.T) {
	got := AuthorizedKeyTmpfiles("ssh-ed25519 AAAA test\n")
	want := "d /root/.ssh 0700 root root -\n" +
		"f+~ /root/.ssh/authorized_keys 0600 root root - " + base64.StdEncoding.EncodeToString([]byte("ssh-ed25519 AAAA test\n")) + "\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
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
