package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// checkSecurity looks at a running VM (started with one read-write and one
// read-only bind) the way another user of the host could: no privilege, no
// key where others can read it, nothing listening beyond loopback, only the
// named paths shared.
func checkSecurity(t *testing.T, name string) {
	out, err := exec.Command("podman", "inspect", name).Output()
	if err != nil {
		t.Fatalf("podman inspect: %v", err)
	}
	var insp []struct {
		HostConfig struct {
			Privileged   bool
			CapAdd       []string
			CapDrop      []string
			SecurityOpt  []string
			PortBindings map[string]any
			Memory       int64
			MemorySwap   int64
			PidsLimit    int64
			Tmpfs        map[string]string
		}
		Mounts []struct {
			Type        string
			Destination string
			RW          bool
		}
		Config struct {
			Labels map[string]string
		}
	}
	if err := json.Unmarshal(out, &insp); err != nil || len(insp) != 1 {
		t.Fatalf("podman inspect output: %v", err)
	}
	c := insp[0]
	if c.HostConfig.Privileged || len(c.HostConfig.CapAdd) > 0 {
		t.Errorf("privileged %v, added capabilities %v", c.HostConfig.Privileged, c.HostConfig.CapAdd)
	}
	for _, cap := range []string{"CAP_KILL", "CAP_NET_BIND_SERVICE"} {
		if !strings.Contains(strings.Join(c.HostConfig.CapDrop, " "), cap) {
			t.Errorf("capability %s is not dropped: %v", cap, c.HostConfig.CapDrop)
		}
	}
	// Every virtiofsd is chrooted into the directory it serves, so a name
	// such as "../../bcvk/state/ssh_key" from the guest stays inside it.
	roots, err := exec.Command("podman", "exec", name, "sh", "-c",
		`for d in /proc/[0-9]*; do [ "$(cat $d/comm 2>/dev/null)" = virtiofsd ] && readlink $d/root; done; true`).Output()
	if err != nil {
		t.Fatalf("reading virtiofsd's root directories: %v", err)
	}
	got := strings.Fields(string(roots))
	sort.Strings(got)
	want := []string{"/bcvk/binds/0", "/bcvk/binds/1", "/bcvk/image"}
	for _, m := range c.Mounts {
		if m.Destination == "/bcvk/erofs" { // an EROFS root: only the shares have a virtiofsd
			want = want[:2]
			break
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("virtiofsd root directories %q, want %q (each chrooted into its share)", got, want)
	}
	if !strings.Contains(strings.Join(c.HostConfig.SecurityOpt, " "), "no-new-privileges") {
		t.Errorf("no no-new-privileges: %v", c.HostConfig.SecurityOpt)
	}
	// Limits: the guest cannot take the host's memory or tasks through
	// the runner, nor fill the host's memory through /run.
	if c.HostConfig.Memory <= 0 || c.HostConfig.MemorySwap != c.HostConfig.Memory {
		t.Errorf("memory limit %d, memory+swap %d: want a limit and no swap", c.HostConfig.Memory, c.HostConfig.MemorySwap)
	}
	if c.HostConfig.PidsLimit <= 0 {
		t.Errorf("no pids limit (%d)", c.HostConfig.PidsLimit)
	}
	if !strings.Contains(c.HostConfig.Tmpfs["/run"], "size=") {
		t.Errorf("/run tmpfs without a size: %q", c.HostConfig.Tmpfs["/run"])
	}
	if len(c.HostConfig.PortBindings) > 0 {
		t.Errorf("ports published: %v", c.HostConfig.PortBindings)
	}
	allowed := map[string]bool{"/bcvk/image": true, "/bcvk/state": true, "/bcvk/binds/0": true, "/bcvk/binds/1": true,
		"/bcvk/erofs": true} // the EROFS cache (--root-transport erofs or auto)
	for _, m := range c.Mounts {
		if !allowed[m.Destination] {
			t.Errorf("unexpected mount %s (%s)", m.Destination, m.Type)
		}
		if m.Destination == "/bcvk/binds/1" && m.RW {
			t.Errorf("the read-only bind is mounted read-write")
		}
	}

	// The key: private, and nowhere others can see it.
	dir := c.Config.Labels["bcvk.state-dir"]
	keyPath := filepath.Join(dir, "ssh_key")
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatalf("reading the VM's key: %v", err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, keyPath: 0o600} {
		if fi, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	lines := strings.Split(strings.TrimSpace(string(key)), "\n")
	secret := lines[len(lines)/2] // a line from the middle of the private key
	if strings.Contains(string(out), secret) || strings.Contains(string(out), "PRIVATE KEY") {
		t.Error("podman inspect shows the private key")
	}
	if ps, _ := exec.Command("ps", "-eww", "-o", "args").Output(); strings.Contains(string(ps), secret) {
		t.Error("a process's command line holds the private key")
	}
	if env, _ := exec.Command("podman", "exec", name, "cat", "/proc/1/environ").Output(); strings.Contains(string(env), secret) {
		t.Error("the runner's environment holds the private key")
	}

	// Listening sockets in the container: loopback only.
	tcp, err := exec.Command("podman", "exec", name, "cat", "/proc/net/tcp", "/proc/net/tcp6").Output()
	if err != nil {
		t.Fatalf("reading the container's sockets: %v", err)
	}
	listening := 0
	for _, l := range strings.Split(string(tcp), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[3] != "0A" { // 0A: LISTEN
			continue
		}
		listening++
		addr := f[1][:strings.IndexByte(f[1], ':')]
		if addr != "0100007F" && addr != "00000000000000000000000001000000" {
			t.Errorf("something listens on a non-loopback address: %s", l)
		}
	}
	if listening == 0 {
		t.Error("found no listening socket at all (QEMU's SSH forward should be one)")
	}

	// The image is read-only, in the container and in the guest.
	if err := exec.Command("podman", "exec", name, "touch", "/bcvk/image/bcvk-write-test").Run(); err == nil {
		t.Error("the image mount in the container is writable")
	}
	// The guest writes into its tmpfs overlay, never into the image.
	r := runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "ssh", name, "--", "sh", "-c",
		"touch /usr/bcvk-write-test && findmnt -no FSTYPE / && test ! -e /run/bcvk/image && echo no-image-exposed")
	if r.code != 0 || r.stdout != "overlay\nno-image-exposed\n" {
		t.Errorf("the guest's root: exit %d, stdout %q (want a writable overlay and no /run/bcvk/image)\n%s", r.code, r.stdout, r.stderr)
	}
	if err := exec.Command("podman", "exec", name, "test", "-e", "/bcvk/image/usr/bcvk-write-test").Run(); err == nil {
		t.Error("the guest's write reached the image")
	}
}
