package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"

	"github.com/bcvk/bcvk/pkg/inner/imagefs"
	"github.com/bcvk/bcvk/pkg/inner/kargsd"
	"github.com/bcvk/bcvk/pkg/spec"
)

// imageFacts are what the image asks for or holds that the boot depends
// on, read inside the image root (the image is data, never trusted).
type imageFacts struct {
	// kargs are the image's kargs.d files that apply here.
	kargs []kargsd.File
	// createUser says the SSH user is not in the image: systemd-sysusers
	// creates it at boot, with shell.
	createUser bool
	shell      string
	// noCloudInit says a cloud-init seed is attached but the image has no
	// cloud-init to read it.
	noCloudInit bool
}

// cloudInitPaths are where images have the cloud-init command.
var cloudInitPaths = []string{"/usr/bin/cloud-init", "/usr/local/bin/cloud-init"}

// hasCloudInit says whether the image at root has cloud-init.
func hasCloudInit(root string) bool {
	for _, p := range cloudInitPaths {
		if fi, _, err := imagefs.Stat(root, p); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// passwdFiles are where images list users: ostree-based images keep the
// system's in /usr/lib/passwd (nss-altfiles).
var passwdFiles = []string{"/etc/passwd", "/usr/lib/passwd"}

const maxPasswd = 4 << 20

func readImage(root string, sp spec.Spec) (imageFacts, error) {
	var f imageFacts
	var err error
	if f.kargs, err = kargsd.Read(root, kargsd.Arch(runtime.GOARCH)); err != nil {
		return f, fmt.Errorf("the image's kernel arguments: %w", err)
	}
	f.noCloudInit = sp.CloudInit != nil && !hasCloudInit(root)
	if sp.SSHUser == "" || sp.SSHUser == spec.DefaultSSHUser {
		return f, nil
	}
	found := false
	for _, p := range passwdFiles {
		b, err := imagefs.ReadFile(root, p, maxPasswd)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return f, err
		}
		found = found || hasUser(b, sp.SSHUser)
	}
	if !found {
		f.createUser, f.shell = true, "/bin/sh"
		if fi, _, err := imagefs.Stat(root, "/bin/bash"); err == nil && fi.Mode().IsRegular() {
			f.shell = "/bin/bash"
		}
	}
	return f, nil
}

func hasUser(passwd []byte, user string) bool {
	for _, l := range bytes.Split(passwd, []byte("\n")) {
		if strings.HasPrefix(string(l), user+":") {
			return true
		}
	}
	return false
}

// describe says what the image asked for, for --log-level debug.
func (f imageFacts) describe(sp spec.Spec) []string {
	var out []string
	for _, k := range f.kargs {
		out = append(out, fmt.Sprintf("kernel arguments from the image's %s/%s: %s", kargsd.Dir, imagefs.Quote(k.Name), strings.Join(k.Args, " ")))
	}
	if f.createUser {
		out = append(out, fmt.Sprintf("the image has no user %s: systemd-sysusers creates it at boot (shell %s)", sp.SSHUser, f.shell))
	}
	return out
}
