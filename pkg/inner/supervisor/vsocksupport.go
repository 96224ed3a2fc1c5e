package supervisor

import (
	"strconv"
	"strings"

	"github.com/bcvk/bcvk/pkg/inner/imagefs"
	"github.com/bcvk/bcvk/pkg/inner/initramfs"
	"github.com/bcvk/bcvk/pkg/inner/kernel"
	"github.com/bcvk/bcvk/pkg/spec"
)

// Where images keep libsystemd-shared-NNN.so: its name carries systemd's
// version, which is known without running anything from the image.
var systemdLibDirs = []string{
	"/usr/lib/systemd", "/usr/lib/x86_64-linux-gnu/systemd", "/usr/lib/aarch64-linux-gnu/systemd",
	"/usr/lib64/systemd",
}

var sshdPaths = []string{"/usr/sbin/sshd", "/usr/bin/sshd", "/usr/libexec/openssh/sshd"}

const sshGenerator = "/usr/lib/systemd/system-generators/systemd-ssh-generator"

// probeVsock reads what the image offers for SSH over vsock. Every path is
// resolved inside the image root; nothing from the image runs.
func probeVsock(root string, k kernel.Kernel) (spec.VsockSupport, error) {
	var v spec.VsockSupport
	for _, d := range systemdLibDirs {
		entries, err := imagefs.ReadDir(root, d)
		if err != nil {
			continue // missing, or odd: no version from here
		}
		for _, e := range entries {
			if n := systemdVersion(e.Name()); n > v.SystemdVersion {
				v.SystemdVersion = n
			}
		}
	}
	v.Generator = regularFile(root, sshGenerator)
	for _, p := range sshdPaths {
		v.SSHD = v.SSHD || regularFile(root, p)
	}
	res, err := initramfs.ResolveModules(k.Root, k.ModulesDir, initramfs.VsockModules)
	if err != nil {
		return v, err
	}
	v.Modules = len(res.Missing) == 0
	return v, nil
}

// systemdVersion reads 257 from "libsystemd-shared-257.so" (and from
// "libsystemd-shared-257.7-1.fc42.so", as Fedora names it).
func systemdVersion(name string) int {
	rest, ok := strings.CutPrefix(name, "libsystemd-shared-")
	if !ok || !strings.HasSuffix(rest, ".so") {
		return 0
	}
	end := 0
	for end < len(rest) && end < 5 && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil {
		return 0
	}
	return n
}

func regularFile(root, name string) bool {
	fi, _, err := imagefs.Stat(root, name)
	return err == nil && fi.Mode().IsRegular()
}
