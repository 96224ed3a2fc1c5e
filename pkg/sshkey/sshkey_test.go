package sshkey

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestEncodeIsDeterministic(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	p := encode(priv.Public().(ed25519.PublicKey), priv, "c", 0x01020304)
	want := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" // the fixed type prefix of every ed25519 blob
	if !strings.HasPrefix(p.Public, want) || !strings.HasSuffix(p.Public, " c") {
		t.Fatalf("public key %q", p.Public)
	}
	blob, _ := base64.StdEncoding.DecodeString(strings.Fields(p.Public)[1])
	if !bytes.HasSuffix(blob, priv.Public().(ed25519.PublicKey)) {
		t.Fatal("public blob does not end with the key")
	}
	q := encode(priv.Public().(ed25519.PublicKey), priv, "c", 0x01020304)
	if !bytes.Equal(p.Private, q.Private) {
		t.Fatal("same input, different output")
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
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v", fi.Mode())
	}
	if err := p.Write(path); err == nil {
		t.Fatal("overwrote an existing key")
	}
	kg, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed; format checked by the integration tests")
	}
	out, err := exec.Command(kg, "-y", "-f", path).Output()
	if err != nil {
		t.Fatalf("ssh-keygen cannot read the key: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != p.Public {
		t.Fatalf("ssh-keygen derived %q, want %q", got, p.Public)
	}
}
