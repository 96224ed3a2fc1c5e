package vm

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/bcvk/bcvk/pkg/spec"
	"github.com/bcvk/bcvk/pkg/sshclient"
)

// SSHConfig returns an ssh_config entry that reaches the VM through podman
// exec and bcvk-inner's proxy, with the VM's own key. Values are quoted for
// ssh_config: double quotes around words, "%" doubled (ssh expands tokens
// in IdentityFile and ProxyCommand); a path that cannot be written so is
// refused.
func SSHConfig(podmanBin, name, user, stateDir string) (string, error) {
	key := filepath.Join(stateDir, spec.SSHKeyFile)
	if err := spec.ValidateUser(user); err != nil {
		return "", err
	}
	for _, v := range []string{podmanBin, name, key} {
		if strings.ContainsAny(v, "\"\\\n\r\x00") {
			return "", fmt.Errorf("%q cannot be written in an ssh_config file (it has a quote, backslash or line break)", v)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Host %s\n", sshConfigWord(name))
	fmt.Fprintf(&b, "  HostName %s\n", sshConfigWord(name))
	fmt.Fprintf(&b, "  User %s\n", user)
	fmt.Fprintf(&b, "  IdentityFile %s\n", sshConfigWord(key))
	fmt.Fprintf(&b, "  IdentitiesOnly yes\n")
	// The guest's host key is new on every boot.
	fmt.Fprintf(&b, "  StrictHostKeyChecking no\n")
	fmt.Fprintf(&b, "  UserKnownHostsFile /dev/null\n")
	fmt.Fprintf(&b, "  LogLevel ERROR\n")
	// ssh hands the rest of the ProxyCommand line to a shell as it is.
	// The proxy picks the VM's transport (vsock or TCP).
	fmt.Fprintf(&b, "  ProxyCommand %s\n", strings.ReplaceAll(fmt.Sprintf("%s exec -i %s bcvk-inner proxy ssh",
		sshclient.Quote(podmanBin), sshclient.Quote(name)), "%", "%%"))
	return b.String(), nil
}

// sshConfigWord quotes one ssh_config argument.
func sshConfigWord(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if s != "" && !strings.ContainsAny(s, " \t#=") {
		return s
	}
	return `"` + s + `"`
}
