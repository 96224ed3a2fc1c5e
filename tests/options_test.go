package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// optionsImage is the image TestVMOptions boots: cloud-init (for
// --cloud-init), which brings python3 (a web server for -p).
func optionsImage() string { return cloudInitImage() }

// The VM options of `ephemeral run` and `run-ssh` (issue 16): every bad
// value is refused before anything starts, and one VM carries them all.
func TestVMOptionsBadInput(t *testing.T) {
	needPodman(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	dir := t.TempDir()
	qcow2 := filepath.Join(dir, "d.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", qcow2, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	backed := filepath.Join(dir, "backed.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", qcow2, backed).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-p", "80"}, "a host and a guest port are needed"},
		{[]string{"-p", "8080:80/udp"}, "only tcp"},
		{[]string{"-p", "70000:80"}, "host port"},
		{[]string{"-p", busyPort + ":80"}, "is in use on this host"},
		{[]string{"-p", "192.0.2.1:8080:80"}, "is not an address of this host"},
		{[]string{"-p", "8080:80", "--network", "none"}, "-p needs a network"},
		{[]string{"--add-swap", "64M", "--warm"}, "--warm cannot be combined with --mount-disk-file or --add-swap"},
		{[]string{"--mount-disk-file", "/nonexistent.img"}, "no such file or directory"},
		{[]string{"--mount-disk-file", dir}, "is not a regular file"},
		{[]string{"--mount-disk-file", qcow2 + ":d:raw"}, "is a qcow2 file: attach it as qcow2"},
		{[]string{"--mount-disk-file", backed}, "with a backing file"},
		{[]string{"--mount-disk-file", qcow2 + ":bad/name"}, "must be 1-20 letters"},
		{[]string{"--mount-disk-file", qcow2, "--mount-disk-file", qcow2 + ":d"}, `disk name "d" is used twice`},
		{[]string{"--add-swap", "lots"}, "invalid size"},
		{[]string{"--add-swap", "4k"}, "give between 1M and 1T"},
		{[]string{"--itype", "u1.huge"}, `--itype "u1.huge": use one of u1.nano`},
	} {
		name := "bcvk-test-badopt"
		args := append([]string{"ephemeral", "run-ssh", "--name", name}, tc.args...)
		r := runBcvk(t, sharedState, nil, time.Minute, append(args, optionsImage(), "--", "true")...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
		assertNothingLeft(t, name, sharedState)
	}
	// The user's files are untouched by a refusal.
	if _, err := os.Stat(qcow2); err != nil {
		t.Error(err)
	}

	r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "run", "--itype", "help")
	if r.code != 0 || !strings.Contains(r.stdout, "u1.small") || !strings.Contains(r.stdout, "u1.2xmedium      2       4G") {
		t.Errorf("--itype help: exit %d, stdout %q", r.code, r.stdout)
	}
	r = runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "wait", "bcvk-test-nosuchvm")
	if r.code != 1 || !strings.Contains(r.stderr, "no such VM") {
		t.Errorf("wait for a VM that is not there: exit %d, stderr %q", r.code, r.stderr)
	}
}

// One VM with a published port, three disk files (qcow2, raw, read-only
// raw), swap, an instance type, a cloud-init seed and the journal, started with -d in the
// background while `ephemeral wait` waits for it; cp works on it too.
func TestVMOptions(t *testing.T) {
	needPodman(t)
	if err := exec.Command("podman", "image", "exists", cloudInitImage()).Run(); err != nil {
		t.Fatalf("image %s is missing: run `make cloudinit-image`", cloudInitImage())
	}
	name := "bcvk-test-opts"
	cleanupContainer(t, name)
	dir := t.TempDir()
	scratch := filepath.Join(dir, "scratch.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", scratch, "1G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	data, rodata := filepath.Join(dir, "data.img"), filepath.Join(dir, "ro.img")
	for _, f := range []string{data, rodata} {
		if err := os.WriteFile(f, make([]byte, 8<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	marked := make([]byte, 8<<20)
	copy(marked, "READ-ONLY-DISK\n")
	if err := os.WriteFile(rodata, marked, 0o444); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	journal := filepath.Join(dir, "journal.log")
	if err := os.WriteFile(journal, []byte("an earlier run's\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	seed := writeCloudInitSeed(t)
	// cloud-init's first two stages run before sysinit.target, and so
	// before SSH: Python under TCG on a busy host takes minutes.
	cmd, out, errb := bcvkCmd(t, sharedState, nil, "--log-level", "debug", "ephemeral", "run", "-d", "--name", name,
		"--timeout", cloudInitBootTimeout.String(), "--cloud-init", seed, "-p", port+":8000", "--mount-disk-file", scratch, "--mount-disk-file", data+":data",
		"--mount-disk-file", rodata+":rodata:raw:ro", "--add-swap", "256M", "--itype", "u1.2xmedium", "--journal", journal, optionsImage())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	// wait, while the VM boots: a short timeout ends with 124 and leaves
	// the VM booting; then a real wait returns once SSH answers.
	waitUntil(t, done, 2*time.Minute, func() bool { return len(containersNamed(t, name)) > 0 },
		func() string { return "the VM's container" })
	r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "wait", "--timeout", "1s", name)
	if r.code != 124 || !strings.Contains(r.stderr, "timed out after 1s") {
		t.Errorf("wait --timeout 1s during the boot: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runBcvk(t, sharedState, nil, cloudInitBootTimeout+time.Minute, "ephemeral", "wait", "--timeout", cloudInitBootTimeout.String(), name)
	if r.code != 0 {
		t.Fatalf("wait: exit %d, stderr %s", r.code, r.stderr)
	}
	select {
	case err := <-done:
		if err != nil || strings.TrimSpace(out.String()) != name {
			t.Fatalf("run -d: %v, stdout %q, stderr:\n%s", err, out, errb)
		}
	case <-time.After(bootTimeout):
		t.Fatal("run -d did not return after the VM was ready")
	}
	if strings.Contains(errb.String(), "has no cloud-init") {
		t.Errorf("a warning that the image has no cloud-init:\n%s", errb)
	}
	if !strings.Contains(errb.String(), "ignoring README") {
		t.Errorf("no debug message about the file that is not part of the seed:\n%s", errb)
	}
	ssh := func(script string) result {
		return runBcvk(t, sharedState, nil, 2*time.Minute, "ephemeral", "ssh", name, "--", "sh", "-c", script)
	}

	t.Run("itype", func(t *testing.T) {
		r := ssh("nproc; awk '/MemTotal/ {print $2}' /proc/meminfo")
		f := strings.Fields(r.stdout)
		if r.code != 0 || len(f) != 2 {
			t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
		}
		kb, _ := strconv.Atoi(f[1])
		// u1.2xmedium: 2 vCPUs, 4 GiB (the kernel keeps some for itself).
		if f[0] != "2" || kb < 3600*1024 || kb > 4096*1024 {
			t.Errorf("nproc %s, MemTotal %d kB; want 2 and about 4 GiB", f[0], kb)
		}
	})
	t.Run("swap", func(t *testing.T) {
		// SSH can answer before the boot is done (over vsock, sshd is up
		// before sysinit.target): swap is active once the boot is.
		r := ssh("systemctl is-system-running --wait >/dev/null; swapon --show=NAME,TYPE,SIZE --noheadings --bytes; readlink -f /dev/disk/by-id/virtio-bcvk-swap")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || len(lines) != 2 {
			t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
		}
		f := strings.Fields(lines[0])
		// The header page is not swap: 256 MiB less 4 KiB.
		if len(f) != 3 || f[0] != lines[1] || f[1] != "partition" || f[2] != strconv.Itoa(256<<20-4096) {
			t.Errorf("swapon --show %q; want the 256 MiB bcvk-swap disk %s", lines[0], lines[1])
		}
	})
	t.Run("disk-files", func(t *testing.T) {
		r := ssh("lsblk --nodeps --noheadings --bytes -o SERIAL,RO,SIZE /dev/disk/by-id/virtio-scratch /dev/disk/by-id/virtio-data /dev/disk/by-id/virtio-rodata")
		want := fmt.Sprintf("scratch 0 %d data 0 %d rodata 1 %d", 1<<30, 8<<20, 8<<20)
		if got := strings.Join(strings.Fields(r.stdout), " "); r.code != 0 || got != want {
			t.Errorf("lsblk: exit %d, got %q, want %q", r.code, got, want)
		}
		// The guest writes the raw disk and the host reads it.
		r = ssh("printf GUEST-WROTE-THIS | dd of=/dev/disk/by-id/virtio-data bs=512 conv=sync,fsync status=none && head -c 15 /dev/disk/by-id/virtio-rodata")
		if r.code != 0 || r.stdout != "READ-ONLY-DISK\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		b, err := os.ReadFile(data)
		if err != nil || !bytes.HasPrefix(b, []byte("GUEST-WROTE-THIS")) {
			t.Errorf("the host's data.img starts %q (%v); want the guest's write", b[:min(len(b), 16)], err)
		}
		r = ssh("printf X | dd of=/dev/disk/by-id/virtio-rodata status=none")
		if r.code == 0 {
			t.Error("the guest wrote the read-only disk")
		}
		if b, _ := os.ReadFile(rodata); !bytes.HasPrefix(b, []byte("READ-ONLY-DISK")) {
			t.Errorf("the read-only file changed: %q", b[:16])
		}
	})
	t.Run("publish", func(t *testing.T) {
		r := ssh("mkdir -p /srv/www && echo published > /srv/www/index.html && cd /srv/www && (setsid python3 -m http.server 8000 >/dev/null 2>&1 &)")
		if r.code != 0 {
			t.Fatalf("starting a web server in the guest: exit %d, %s", r.code, r.stderr)
		}
		url := "http://127.0.0.1:" + port + "/index.html"
		var body string
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) && body != "published\n" {
			if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
			}
			if body != "published\n" {
				time.Sleep(time.Second)
			}
		}
		if body != "published\n" {
			t.Errorf("%s gave %q; want the guest's page", url, body)
		}
		r = runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "ps", "--json")
		var vms []struct {
			Name  string
			Ports []struct {
				HostIP    string
				HostPort  int
				GuestPort int
				Protocol  string
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &vms); err != nil {
			t.Fatalf("ps --json: %v\n%s", err, r.stdout)
		}
		for _, v := range vms {
			if v.Name == name {
				if len(v.Ports) != 1 || v.Ports[0].HostIP != "127.0.0.1" || strconv.Itoa(v.Ports[0].HostPort) != port ||
					v.Ports[0].GuestPort != 8000 || v.Ports[0].Protocol != "tcp" {
					t.Errorf("ps --json ports: %+v", v.Ports)
				}
				return
			}
		}
		t.Errorf("ps --json does not list %s", name)
	})

	t.Run("cloud-init", func(t *testing.T) { checkCloudInit(t, sharedState, name) })
	t.Run("journal", func(t *testing.T) { checkJournal(t, sharedState, name, journal) })
	t.Run("cp", func(t *testing.T) { checkCopy(t, sharedState, name) })

	r = runBcvk(t, sharedState, nil, 2*time.Minute, "ephemeral", "rm", "-f", name)
	if r.code != 0 {
		t.Fatalf("rm -f: exit %d, %s", r.code, r.stderr)
	}
	assertNothingLeft(t, name, sharedState)
	// The journal file is the user's: it stays, with this run's journal.
	if b, err := os.ReadFile(journal); err != nil || strings.Contains(string(b), "an earlier run's") || !strings.Contains(string(b), " kernel: ") {
		t.Errorf("after rm the journal file should hold this run's journal only: %v, %d bytes", err, len(b))
	}
	// The user's disk files stay; the swap disk went with the VM.
	for _, f := range []string{scratch, data, rodata} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the user's disk file: %v", err)
		}
	}
	r = runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "wait", name)
	if r.code != 1 {
		t.Errorf("wait for a removed VM: exit %d, stderr %q", r.code, r.stderr)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second); err == nil {
		c.Close()
		t.Error("the published port still answers after rm")
	}
}

// freePort is a TCP port on 127.0.0.1 that nothing listens on just now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// readPublished reads what a service on the host's 127.0.0.1:port says,
// trying for up to two minutes while the guest starts it.
func readPublished(t *testing.T, port string) string {
	t.Helper()
	var got string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 10*time.Second)
		if err != nil {
			continue
		}
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		if got = string(b); got != "" {
			return got
		}
	}
	return got
}
