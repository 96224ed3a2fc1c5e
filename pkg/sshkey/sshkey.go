// Package sshkey makes the per-VM SSH key pair in OpenSSH's own formats
// (golang.org/x/crypto/ssh), so the host needs no ssh-keygen.
package sshkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Pair is an ed25519 key in OpenSSH formats.
type Pair struct {
	Private []byte // "-----BEGIN OPENSSH PRIVATE KEY-----" PEM
	Public  string // "ssh-ed25519 AAAA... comment"
}

// Generate makes a new key pair with the given comment.
func Generate(comment string) (Pair, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	return encode(priv, comment)
}

func encode(priv ed25519.PrivateKey, comment string) (Pair, error) {
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return Pair{}, err
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return Pair{}, err
	}
	return Pair{
		Private: pem.EncodeToMemory(block),
		Public:  strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " " + comment,
	}, nil
}

// Write stores the pair as path (mode 0600) and path.pub (0644). The private
// key is written to a new file only: an existing file is an error.
func (p Pair) Write(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing SSH key: %w", err)
	}
	if _, err := f.Write(p.Private); err != nil {
		f.Close()
		return fmt.Errorf("writing SSH key: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.WriteFile(path+".pub", []byte(p.Public+"\n"), 0o644)
}
