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

// AuthorizedKeyTmpfiles returns tmpfiles.d lines that install pubkey as the
// only authorized key of root. The key travels base64-encoded ("f+~") so that
// no character in it can break the tmpfiles syntax.
func AuthorizedKeyTmpfiles(pubkey string) string {
	key := strings.TrimSpace(pubkey) + "\n"
	return "d /root/.ssh 0700 root root -\n" +
		"f+~ /root/.ssh/authorized_keys 0600 root root - " + base64.StdEncoding.EncodeToString([]byte(key)) + "\n"
}
