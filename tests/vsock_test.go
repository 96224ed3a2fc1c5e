package tests

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// psTransport returns the sshTransport that `ephemeral ps --json` shows for
// the VM name.
func psTransport(t *testing.T, name string) string {
	t.Helper()
	r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "ps", "--json")
	var vms []struct {
		Name         string `json:"name"`
		SSHTransport string `json:"sshTransport"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &vms); err != nil {
		t.Fatalf("ps --json: %v: %q", err, r.stdout)
	}
	for _, vm := range vms {
		if vm.Name == name {
			return vm.SSHTransport
		}
	}
	t.Fatalf("ps --json does not list %s: %s", name, r.stdout)
	return ""
}

// One VM over vsock with no network at all and ssh.service masked: SSH,
// commands, streams and a read-only share still work, since sshd is on
// vsock (started by systemd's generator per connection) and shares are
// virtiofs.
func TestVsockNoNetwork(t *testing.T) {
	needPodman(t)
	name := "bcvk-test-vsock"
	cleanupContainer(t, name)
	ro := t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "in.txt"), []byte("over virtiofs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBcvk(t, sharedState, nil, bootTimeout, "--log-level", "debug", "ephemeral", "run", "-d", "--name", name,
		"--network", "none", "--karg", "systemd.mask=ssh.service", "--ro-bind", ro+":/mnt/ro", sampleImage())
	if r.code != 0 {
		t.Fatalf("run -d: exit %d\n%s", r.code, tail(r.stderr, 30))
	}
	defer func() {
		runBcvk(t, sharedState, nil, 2*time.Minute, "ephemeral", "rm", "-f", name)
		assertNothingLeft(t, name, sharedState)
	}()
	// The guest's systemd reported its progress over vsock, and bcvk's
	// guest init its steps.
	for _, want := range []string{"systemd: sockets.target reached", "guest init: root mounted", "guest init: shares mounted (1)", "guest init: handover to "} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("no %q in the debug output:\n%s", want, tail(r.stderr, 30))
		}
	}
	if got := psTransport(t, name); got != "vsock" {
		t.Errorf("ps --json says sshTransport %q, want vsock", got)
	}
	ssh := func(stdin []byte, args ...string) result {
		return runBcvk(t, sharedState, bytes.NewReader(stdin), 2*time.Minute, append([]string{"ephemeral", "ssh", name, "--"}, args...)...)
	}
	t.Run("streams", func(t *testing.T) {
		payload := make([]byte, 4<<20)
		if _, err := rand.Read(payload); err != nil {
			t.Fatal(err)
		}
		r := ssh(payload, "sh", "-c", "cat; echo to-stderr >&2; exit 7")
		if r.code != 7 || !bytes.Equal([]byte(r.stdout), payload) || !strings.Contains(r.stderr, "to-stderr") {
			t.Errorf("exit %d, %d of %d bytes back, stderr %q", r.code, len(r.stdout), len(payload), tail(r.stderr, 5))
		}
	})
	t.Run("no-network", func(t *testing.T) {
		r := ssh(nil, "sh", "-c", "ls /sys/class/net; systemctl is-active ssh.service || true; echo $SSH_CONNECTION")
		if r.stdout != "lo\ninactive\nUNKNOWN 65535 UNKNOWN 65535\n" {
			t.Errorf("guest says %q (want only lo, ssh.service inactive, a non-IP connection); stderr %s", r.stdout, r.stderr)
		}
		r = ssh(nil, "bash", "-c", "exec 3<>/dev/tcp/10.0.76.2/22")
		if r.code == 0 || !strings.Contains(r.stderr, "Network is unreachable") {
			t.Errorf("reaching the host address: exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("ro-bind", func(t *testing.T) {
		if r := ssh(nil, "cat", "/mnt/ro/in.txt"); r.code != 0 || r.stdout != "over virtiofs\n" {
			t.Errorf("read %q (exit %d) from the share", r.stdout, r.code)
		}
	})
}

// TCP: asked for, and chosen by bcvk itself (with one line saying so) when
// the kernel arguments turn systemd's SSH generator off.
func TestSSHTransportTCP(t *testing.T) {
	needPodman(t)
	t.Run("asked", func(t *testing.T) {
		name := "bcvk-test-tcp"
		cleanupContainer(t, name)
		r := runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "run-ssh", "--name", name, "--memory", "1G",
			"--ssh-transport", "tcp", sampleImage(), "--", "sh", "-c", "echo $SSH_CONNECTION")
		if f := strings.Fields(r.stdout); r.code != 0 || len(f) != 4 || f[0] != "10.0.76.2" || f[3] != "22" {
			t.Errorf("exit %d, SSH_CONNECTION %q (want from QEMU's 10.0.76.2 to port 22)\n%s", r.code, r.stdout, tail(r.stderr, 10))
		}
		if strings.Contains(r.stderr, "not vsock") {
			t.Errorf("a fallback line when TCP was asked for:\n%s", r.stderr)
		}
		assertNothingLeft(t, name, sharedState)
	})
	t.Run("fallback", func(t *testing.T) {
		name := "bcvk-test-fallback"
		cleanupContainer(t, name)
		r := runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "run", "-d", "--name", name, "--memory", "1G",
			"--karg", "systemd.ssh_auto=0", sampleImage())
		if r.code != 0 {
			t.Fatalf("run -d: exit %d\n%s", r.code, tail(r.stderr, 30))
		}
		defer func() {
			runBcvk(t, sharedState, nil, 2*time.Minute, "ephemeral", "rm", "-f", name)
			assertNothingLeft(t, name, sharedState)
		}()
		want := "SSH goes over TCP, not vsock: the kernel arguments turn systemd's SSH generator off (systemd.ssh_auto)"
		if n := strings.Count(r.stderr, "not vsock"); n != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("want the line %q once, got %d:\n%s", want, n, r.stderr)
		}
		if got := psTransport(t, name); got != "tcp" {
			t.Errorf("ps --json says sshTransport %q, want tcp", got)
		}
		r = runBcvk(t, sharedState, nil, 2*time.Minute, "ephemeral", "ssh", name, "--", "sh", "-c", "echo $SSH_CONNECTION")
		if f := strings.Fields(r.stdout); r.code != 0 || len(f) != 4 || f[0] != "10.0.76.2" {
			t.Errorf("exit %d, SSH_CONNECTION %q", r.code, r.stdout)
		}
	})
	t.Run("vsock-impossible", func(t *testing.T) {
		// Asked for vsock where the image cannot: refused before the boot.
		name := "bcvk-test-novsock"
		cleanupContainer(t, name)
		r := runBcvk(t, sharedState, nil, 2*time.Minute, "ephemeral", "run-ssh", "--name", name,
			"--ssh-transport", "vsock", "--karg", "systemd.ssh_auto=0", sampleImage(), "--", "true")
		if r.code == 0 || !strings.Contains(r.stderr, "--ssh-transport vsock: the kernel arguments turn systemd's SSH generator off") {
			t.Errorf("exit %d:\n%s", r.code, tail(r.stderr, 10))
		}
		assertNothingLeft(t, name, sharedState)
	})
}
