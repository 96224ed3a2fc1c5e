package sshkey

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// The private key reads back (without ssh-keygen) as the same key, signs,
// and the public line names it with the comment.
func TestGenerateRoundTrip(t *testing.T) {
	p, err := Generate("bcvk-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(p.Private)
	if err != nil {
		t.Fatalf("private key does not parse: %v", err)
	}
	pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(p.Public))
	if err != nil || comment != "bcvk-test" || pub.Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("public line %q: %v, comment %q", p.Public, err, comment)
	}
	if string(signer.PublicKey().Marshal()) != string(pub.Marshal()) {
		t.Fatal("the public line is not the private key's")
	}
	sig, err := signer.Sign(nil, []byte("data"))
	if err != nil || pub.Verify([]byte("data"), sig) != nil {
		t.Fatalf("sign/verify: %v", err)
	}
	if q, _ := Generate("bcvk-test"); q.Public == p.Public {
		t.Fatal("two keys are the same")
	}
}

func TestWriteModesAndSSHKeygen(t *testing.T) {
	p, err := Generate("bcvk-test")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key")
	if err := p.Write(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v %v", fi, err)
	}
	if err := p.Write(path); err == nil {
		t.Fatal("overwrote an existing key")
	}
	kg, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed; the format is checked by TestGenerateRoundTrip")
	}
	out, err := exec.Command(kg, "-y", "-f", path).Output()
	if err != nil {
		t.Fatalf("ssh-keygen cannot read the key: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != p.Public {
		t.Fatalf("ssh-keygen derived %q, want %q", got, p.Public)
	}
}
