package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cloudInitImage is the sample image with cloud-init
// (hack/build-cloudinit-image.sh).
func cloudInitImage() string {
	return env("BCVK_CLOUDINIT_IMAGE", "localhost/bcvk-test-cloudinit:latest")
}

// cloudInitBootTimeout bounds a boot of the cloud-init image until SSH.
const cloudInitBootTimeout = 15 * time.Minute

// What the test seed's user-data does, and what checkCloudInit looks for.
const (
	cloudInitUser       = "bcvk-ci-user"
	cloudInitWritten    = "/var/lib/bcvk-ci/written"
	cloudInitWrittenMsg = "written by cloud-init's write_files"
	cloudInitRuncmd     = "/var/lib/bcvk-ci/runcmd"
	cloudInitInstanceID = "bcvk-test-iid"
	cloudInitUserData   = `#cloud-config
users:
  - name: ` + cloudInitUser + `
    gecos: bcvk cloud-init test user
    shell: /bin/bash
    lock_passwd: true
write_files:
  - path: ` + cloudInitWritten + `
    content: |
      ` + cloudInitWrittenMsg + `
    permissions: "0640"
runcmd:
  - [sh, -c, 'echo "runcmd ran as $(id -un), ` + cloudInitUser + ` is uid $(id -u ` + cloudInitUser + `)" > ` + cloudInitRuncmd + `']
`
)

// writeCloudInitSeed makes a NoCloud seed directory for checkCloudInit,
// with a file that bcvk ignores.
func writeCloudInitSeed(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"user-data": cloudInitUserData,
		"meta-data": "instance-id: " + cloudInitInstanceID + "\nlocal-hostname: bcvk-ci\n",
		"README":    "not part of the seed\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// checkCloudInit asserts in the running VM name, booted with the seed of
// writeCloudInitSeed, that cloud-init read the seed and ran its user-data:
// it waits for cloud-init to finish, then looks for the file write_files
// wrote, the file runcmd wrote and the user that users: created.
func checkCloudInit(t *testing.T, stateDir, name string) {
	t.Helper()
	ssh := func(args ...string) result {
		return runBcvk(t, stateDir, nil, 10*time.Minute, append([]string{"ephemeral", "ssh", name, "--"}, args...)...)
	}
	r := ssh("cloud-init", "status", "--wait", "--long")
	if r.code != 0 {
		t.Fatalf("cloud-init status --wait: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "NoCloud") {
		t.Errorf("cloud-init did not use the NoCloud data source:\n%s", r.stdout)
	}
	for _, c := range []struct{ what, cmd, want string }{
		{"instance-id from meta-data", "cloud-init query v1.instance_id", cloudInitInstanceID + "\n"},
		{"the file write_files wrote", "cat " + cloudInitWritten, cloudInitWrittenMsg + "\n"},
		{"its mode", "stat -c %a " + cloudInitWritten, "640\n"},
		{"the user users: created", "getent passwd " + cloudInitUser + " | cut -d: -f1,5,7", cloudInitUser + ":bcvk cloud-init test user:/bin/bash\n"},
		{"the seed disk", "blkid -o value -s LABEL /dev/disk/by-id/virtio-cidata; cat /sys/block/$(basename $(readlink -f /dev/disk/by-id/virtio-cidata))/ro", "CIDATA\n1\n"},
	} {
		if r := ssh("sh", "-c", c.cmd); r.code != 0 || r.stdout != c.want {
			t.Errorf("%s: %s: exit %d, stdout %q, want %q\n%s", c.what, c.cmd, r.code, r.stdout, c.want, r.stderr)
		}
	}
	uid := ssh("id", "-u", cloudInitUser)
	if uid.code != 0 {
		t.Fatalf("id %s: exit %d\n%s", cloudInitUser, uid.code, uid.stderr)
	}
	want := "runcmd ran as root, " + cloudInitUser + " is uid " + uid.stdout
	if r := ssh("cat", cloudInitRuncmd); r.code != 0 || r.stdout != want {
		t.Errorf("the file runcmd wrote: exit %d, %q, want %q\n%s", r.code, r.stdout, want, r.stderr)
	}
}

// A bad seed is a usage error before anything starts.
func TestCloudInitBadSeed(t *testing.T) {
	needPodman(t)
	noUserData := t.TempDir()
	if err := os.WriteFile(filepath.Join(noUserData, "meta-data"), []byte("instance-id: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	name := "bcvk-test-cloudinit-bad"
	for _, tc := range []struct {
		cmd  []string
		dir  string
		want string
	}{
		{[]string{"run-ssh"}, "/nonexistent", "--cloud-init: /nonexistent does not exist"},
		{[]string{"run", "-d"}, "/nonexistent", "--cloud-init: /nonexistent does not exist"},
		{[]string{"run-ssh"}, noUserData, "has no user-data file"},
		{[]string{"run", "-d"}, noUserData, "has no user-data file"},
	} {
		args := append(append([]string{"ephemeral"}, tc.cmd...), "--name", name, "--cloud-init", tc.dir, sampleImage())
		if tc.cmd[0] == "run-ssh" {
			args = append(args, "--", "true")
		}
		r := runBcvk(t, sharedState, nil, time.Minute, args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.cmd, r.code, r.stderr, tc.want)
		}
		assertNothingLeft(t, name, sharedState)
	}
}
