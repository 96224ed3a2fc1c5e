// Package virtiofsd builds virtiofsd command lines.
package virtiofsd

// Config is what the command line depends on.
type Config struct {
	Binary    string
	Socket    string
	SharedDir string
	ReadOnly  bool
	// Coherent is for host directories that may change under the guest:
	// the guest revalidates its cache instead of trusting it forever.
	Coherent bool
}

// DefaultBinary is where Debian installs virtiofsd.
const DefaultBinary = "/usr/libexec/virtiofsd"

// Args returns the argument list (without the binary).
func Args(c Config) []string {
	a := []string{
		"--socket-path=" + c.Socket,
		"--shared-dir=" + c.SharedDir,
		// The guest runs its own kernel and may send any name to virtiofsd
		// ("../../bcvk/state/ssh_key"): chroot(2) into the shared directory
		// keeps every request inside it. The namespace sandbox would need
		// CAP_SYS_ADMIN; chroot needs only CAP_SYS_CHROOT, which podman
		// grants by default, rootful and rootless.
		"--sandbox=chroot",
		// The image does not change under a running VM, so the guest may
		// cache everything: four times faster than cache=never under TCG.
		"--cache=" + cacheMode(c.Coherent),
		"--allow-mmap",
		// File handles need CAP_DAC_READ_SEARCH and fail on overlay stores.
		"--inode-file-handles=never",
		"--log-level=error",
	}
	if c.ReadOnly {
		a = append(a, "--readonly")
	}
	// podman does not grant CAP_MKNOD by default, and without dropping it
	// virtiofsd fails to apply its capability set. The guest cannot make
	// device nodes in a share then, which nobody needs.
	a = append(a, "--modcaps=-mknod")
	return a
}

func cacheMode(coherent bool) string {
	if coherent {
		return "auto"
	}
	return "always"
}
