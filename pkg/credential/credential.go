// Package credential encodes systemd credentials for delivery to a guest
// through SMBIOS type 11 OEM strings, which systemd (v252+) imports at boot
// without any change to the image.
package credential

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
)

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9_.~-]{1,255}$`)
	smbiosRE = regexp.MustCompile(`^io\.systemd\.credential\.binary:[A-Za-z0-9_.~-]{1,255}=[A-Za-z0-9+/]*={0,2}$`)
)

// MaxSMBIOS bounds one credential value read back from a saved VM (QEMU
// takes it as one command-line word).
const MaxSMBIOS = 64 << 10

// ValidSMBIOS checks a value that SMBIOS made, for values read back from a
// file (a saved VM): exactly the form SMBIOS writes, so that nothing in it
// can add QEMU options (a comma would).
func ValidSMBIOS(v string) error {
	if len(v) > MaxSMBIOS || !smbiosRE.MatchString(v) {
		return fmt.Errorf("not a systemd credential as bcvk passes it: %.60q", v)
	}
	return nil
}

// SMBIOS returns the value for QEMU's `-smbios type=11,value=...` that passes
// the credential name with the given content. QEMU splits -smbios values at
// commas unless doubled, so the base64 form (which has no commas) is always
// used.
func SMBIOS(name string, content []byte) (string, error) {
	if !nameRE.MatchString(name) {
		return "", fmt.Errorf("invalid credential name %q", name)
	}
	return "io.systemd.credential.binary:" + name + "=" + base64.StdEncoding.EncodeToString(content), nil
}

// AuthorizedKeysDir is where the guest keeps the keys bcvk authorizes,
// one file per user, read by sshd through SSHDDropIn. Nothing depends on
// a writable home: images with a read-only /root or /home work too.
const AuthorizedKeysDir = "/run/bcvk/ssh"

// SSHDDropIn makes sshd read the keys in AuthorizedKeysDir besides the
// usual ones. sshd takes the first value of a setting and includes
// sshd_config.d before its own lines, so this one wins.
const SSHDDropIn = "/etc/ssh/sshd_config.d/00-bcvk.conf"

// AuthorizedKeysFile is the file for user.
func AuthorizedKeysFile(user string) string { return AuthorizedKeysDir + "/authorized_keys." + user }

const sshdConfig = "# Written by bcvk at boot: keys for this VM are in " + AuthorizedKeysDir + ".\n" +
	"AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys2 " + AuthorizedKeysDir + "/authorized_keys.%u\n"

// AuthorizedKeyTmpfiles returns tmpfiles.d lines that authorize pubkey for
// each of users (names checked by the caller) and the sshd drop-in. The
// files are root's, mode 0644 (sshd accepts a key file owned by root, and
// a public key is no secret). Contents travel base64-encoded ("f+~") so
// that no character in them can break the tmpfiles syntax.
func AuthorizedKeyTmpfiles(pubkey string, users ...string) string {
	key := base64.StdEncoding.EncodeToString([]byte(strings.TrimSpace(pubkey) + "\n"))
	var b strings.Builder
	b.WriteString("d " + AuthorizedKeysDir + " 0755 root root -\n")
	for _, u := range users {
		b.WriteString("f+~ " + AuthorizedKeysFile(u) + " 0644 root root - " + key + "\n")
	}
	b.WriteString("f+~ " + SSHDDropIn + " 0644 root root - " + base64.StdEncoding.EncodeToString([]byte(sshdConfig)) + "\n")
	return b.String()
}

// UserSysusers returns a sysusers.d line that creates user (a name checked
// by the caller) with a home below /home and shell, and the tmpfiles.d line
// that makes the home (sysusers does not).
func UserSysusers(user, shell string) (sysusers, tmpfiles string) {
	return fmt.Sprintf("u %s - \"bcvk SSH user\" /home/%s %s\n", user, user, shell),
		fmt.Sprintf("d /home/%s 0700 %s %s -\n", user, user, user)
}
