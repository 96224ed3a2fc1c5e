// Package sshkey makes the per-VM SSH key pair. It writes OpenSSH's own
// formats with the standard library alone, so the host needs no ssh-keygen.
package sshkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"os"
)

// Pair is an ed25519 key in OpenSSH formats.
type Pair struct {
	Private []byte // "-----BEGIN OPENSSH PRIVATE KEY-----" PEM
	Public  string // "ssh-ed25519 AAAA... comment"
}

// Generate makes a new key pair with the given comment.
func Generate(comment string) (Pair, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	var check [4]byte
	if _, err := rand.Read(check[:]); err != nil {
		return Pair{}, err
	}
	return encode(pub, priv, comment, binary.BigEndian.Uint32(check[:])), nil
}

func encode(pub ed25519.PublicKey, priv ed25519.PrivateKey, comment string, check uint32) Pair {
	pubBlob := sshString(nil, []byte("ssh-ed25519"))
	pubBlob = sshString(pubBlob, pub)

	// The private section of openssh-key-v1: two equal check words, then the
	// key, then padding 1, 2, 3... to the cipher block size (8 for "none").
	var sec []byte
	sec = binary.BigEndian.AppendUint32(sec, check)
	sec = binary.BigEndian.AppendUint32(sec, check)
	sec = sshString(sec, []byte("ssh-ed25519"))
	sec = sshString(sec, pub)
	sec = sshString(sec, priv) // 64 bytes: seed then public key
	sec = sshString(sec, []byte(comment))
	for i := byte(1); len(sec)%8 != 0; i++ {
		sec = append(sec, i)
	}

	var body []byte
	body = append(body, "openssh-key-v1\x00"...)
	body = sshString(body, []byte("none")) // cipher
	body = sshString(body, []byte("none")) // kdf
	body = sshString(body, nil)            // kdf options
	body = binary.BigEndian.AppendUint32(body, 1)
	body = sshString(body, pubBlob)
	body = sshString(body, sec)

	return Pair{
		Private: pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: body}),
		Public:  "ssh-ed25519 " + base64.StdEncoding.EncodeToString(pubBlob) + " " + comment,
	}
}

func sshString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
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
