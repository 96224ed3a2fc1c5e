package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bcvk/bcvk/pkg/sshkey"
)

// The libvirt tests share one base disk and two VMs: the base is made once
// (to-disk of the bootc-layout image, qcow2, uploaded over qemu+tcp), VM A
// boots from it with UEFI, shares and a port, and is stopped and started;
// VM B, made over qemu+ssh, shows that a second VM reuses the base, and
// carries the VM options: --itype with --vcpus, two --mount-disk-file
// (qemu+ssh to 127.0.0.1 is this machine) and --add-swap. Every
// URI reaches the same libvirtd here: "remote" takes the remote code path
// (the TCP and SSH transports, the stream upload, the SSH jump) on this
// one machine, as the issue asks.

const libvirtTimeout = 20 * time.Minute

type libvirtEnv struct {
	t        *testing.T
	pool     string
	tcpURI   string
	sshURI   string
	sshdLog  *syncBuffer
	keysDir  string
	baseArgs []string // --pool, for every command
}

// needLibvirt fails (it does not skip) when libvirtd is not running: CI
// starts it (hack/libvirt-host.sh start, from make integration).
func needLibvirt(t *testing.T) {
	t.Helper()
	needPodman(t)
	needBootcImage(t)
	if out, err := exec.Command("virsh", "-c", "qemu:///system", "version").CombinedOutput(); err != nil {
		t.Fatalf("libvirtd is not running (virsh: %v: %s): run `hack/libvirt-host.sh start`", err, out)
	}
}

func tcpPort() string { return env("BCVK_LIBVIRT_TCP_PORT", "16509") }

// lv runs `bcvk libvirt --pool POOL ARGS...` with the test's key directory.
func (e *libvirtEnv) lv(timeout time.Duration, args ...string) result {
	e.t.Helper()
	return runBcvk(e.t, sharedState, nil, timeout, append(append([]string{"libvirt"}, e.baseArgs...), args...)...)
}

func (e *libvirtEnv) lvOK(timeout time.Duration, args ...string) result {
	e.t.Helper()
	r := e.lv(timeout, args...)
	if r.code != 0 {
		e.t.Fatalf("bcvk libvirt %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

func virsh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("virsh", append([]string{"-c", "qemu:///system"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func virshTry(args ...string) (string, error) {
	out, err := exec.Command("virsh", append([]string{"-c", "qemu:///system"}, args...)...).CombinedOutput()
	return string(out), err
}

// startTestSSHD runs an sshd on a loopback port that lets in one key, as a
// remote libvirt host's sshd would; its log shows the channels it opened.
func startTestSSHD(t *testing.T) (uri string, log *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	hostKey, err := sshkey.Generate("bcvk-test-sshd")
	if err != nil {
		t.Fatal(err)
	}
	clientKey, err := sshkey.Generate("bcvk-test-client")
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]sshkey.Pair{"host": hostKey, "client": clientKey} {
		if err := k.Write(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(clientKey.Public+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(fmt.Sprintf("[127.0.0.1]:%d %s\n", port, hostKey.Public)), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll("/run/sshd", 0o755) // sshd's privilege separation directory
	log = &syncBuffer{}
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null",
		"-o", "ListenAddress=127.0.0.1", "-p", strconv.Itoa(port), "-h", filepath.Join(dir, "host"),
		"-o", "AuthorizedKeysFile="+filepath.Join(dir, "authorized_keys"), "-o", "StrictModes=no",
		"-o", "PermitRootLogin=prohibit-password", "-o", "PasswordAuthentication=no", "-o", "PidFile=none",
		"-o", "LogLevel=DEBUG1", "-o", "AllowTcpForwarding=yes", "-o", "AllowStreamLocalForwarding=yes")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting sshd (is openssh-server installed? hack/install-host-deps.sh): %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the test sshd did not listen: %s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	uri = fmt.Sprintf("qemu+ssh://root@127.0.0.1:%d/system?keyfile=%s&known_hosts=%s", port,
		filepath.Join(dir, "client"), filepath.Join(dir, "known_hosts"))
	return uri, log
}

// TestLibvirt: base disk, VMs over local, TCP and SSH URIs, shares, a port,
// stop and start, a second VM on the same base, rm, and bad input.
func TestLibvirt(t *testing.T) {
	needLibvirt(t)
	e := &libvirtEnv{t: t, pool: "bcvk-test-" + strconv.Itoa(os.Getpid())}
	e.baseArgs = []string{"--pool", e.pool}
	e.tcpURI = "qemu+tcp://127.0.0.1:" + tcpPort() + "/system"
	e.sshURI, e.sshdLog = startTestSSHD(t)
	// The VMs' keys go to a directory of the test's own.
	e.keysDir = t.TempDir()
	t.Setenv("XDG_DATA_HOME", e.keysDir)
	label := "bcvk-test=" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() {
		_, _ = tryBcvk(t, sharedState, nil, 2*time.Minute, "libvirt", "--pool", e.pool, "rm-all", "-f", "--label", label)
		_, _ = tryBcvk(t, sharedState, nil, time.Minute, "libvirt", "--pool", e.pool, "base-disks", "prune")
		_, _ = virshTry("pool-destroy", e.pool)
		_, _ = virshTry("pool-undefine", e.pool)
		_ = os.Remove("/var/lib/libvirt/images/" + e.pool)
	})

	// A domain bcvk did not make: listed never, removed never.
	foreign := "bcvk-test-foreign-" + strconv.Itoa(os.Getpid())
	xml := filepath.Join(t.TempDir(), "foreign.xml")
	if err := os.WriteFile(xml, []byte("<domain type='qemu'><name>"+foreign+"</name><memory unit='MiB'>128</memory><os><type arch='x86_64'>hvm</type></os></domain>"), 0o644); err != nil {
		t.Fatal(err)
	}
	virsh(t, "define", xml)
	t.Cleanup(func() { _, _ = virshTry("undefine", foreign) })

	t.Run("bad-input", func(t *testing.T) { libvirtBadInput(t, e) })

	rw, ro := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(rw, "in"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "ro"), []byte("read only\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	webPort := freeLocalPort(t)
	vmA, vmB := "bcvk-test-a-"+strconv.Itoa(os.Getpid()), "bcvk-test-b-"+strconv.Itoa(os.Getpid())

	// VM A over qemu+tcp: the base is made here (cold) and uploaded over
	// the TCP connection's stream; the command's exit status comes back.
	e.t = t
	probe := `echo "cmdline=$(cat /proc/cmdline)"; echo "state=$(systemctl is-system-running --wait)"; ` +
		`echo "efi=$(test -d /sys/firmware/efi && echo yes || echo no)"; echo "bootc-status=$(bootc status --json 2>&1 | tr -d "\n")"; ` +
		`cat /var/data/in; echo from-guest > /var/data/out; echo x > /var/ro/new && echo ro-writable || echo ro-refused; ` +
		`echo kept > /var/kept; echo "images=$(podman images --noheading --no-trunc --format '{{.ID}}' | tr '\n' ' ')"; exit 7`
	r := e.lv(libvirtTimeout, "--connect", e.tcpURI, "run", "--name", vmA, "--accel", "tcg", "--firmware", "uefi",
		"--karg", "bcvk.test=libvirt", "--label", label, "--port", fmt.Sprintf("%d:8080", webPort),
		"--bind", rw+":/var/data", "--ro-bind", ro+":/var/ro", "--bind-storage-ro", "--ssh", bootcImage(), "--", "sh", "-c", probe)
	if r.code != 7 {
		t.Fatalf("libvirt run --ssh -- CMD: exit %d, want the command's 7\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"making one with bcvk to-disk", "through libvirt's stream", "on " + e.tcpURI} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the first run's progress lacks %q:\n%s", want, r.stderr)
		}
	}
	out := r.stdout
	if !strings.Contains(out, "bcvk.test=libvirt") || !strings.Contains(out, "state=running") || !strings.Contains(out, "efi=yes") {
		t.Errorf("VM A: want the karg, state=running and UEFI:\n%s", out)
	}
	// The installer applied the image's kargs.d (to-disk's job), and the
	// installed system records the image it came from.
	if !strings.Contains(out, "bcvk.kargsd=yes") {
		t.Errorf("the installed system lacks the image's kargs.d arguments:\n%s", out)
	}
	assertInstalledFrom(t, out, bootcImage())
	if !strings.Contains(out, "from the host") || !strings.Contains(out, "ro-refused") {
		t.Errorf("shares: want the host's file read and the read-only share refused:\n%s", out)
	}
	// --bind-storage-ro: the guest's podman lists the host's images.
	if id := inspectImage(t, bootcImage(), "{{.Id}}"); !strings.Contains(out, id) {
		t.Errorf("the guest's podman images lack the host's image %s (--bind-storage-ro):\n%s", id, out)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "out")); err != nil || string(b) != "from-guest\n" {
		t.Errorf("the guest's write to the --bind share: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(ro, "new")); err == nil {
		t.Errorf("the guest wrote into the --ro-bind share")
	}

	t.Run("name-in-use", func(t *testing.T) {
		e.t = t
		before := virsh(t, "vol-list", e.pool)
		r := e.lv(time.Minute, "run", "--name", vmA, "--accel", "tcg", bootcImage())
		if r.code == 0 || !strings.Contains(r.stderr, "a VM named "+vmA+" exists") || !strings.Contains(r.stderr, "--replace") {
			t.Errorf("a second run with the same name: exit %d, want a clear error:\n%s", r.code, r.stderr)
		}
		if after := virsh(t, "vol-list", e.pool); after != before {
			t.Errorf("the refused run changed the pool:\n%s\nthen:\n%s", before, after)
		}
	})

	t.Run("ssh-over-ssh-uri", func(t *testing.T) {
		e.t = t
		r := e.lvOK(5*time.Minute, "--connect", e.sshURI, "ssh", vmA, "--", "sh", "-c", "cat /var/kept; hostname >/dev/null; exit 0")
		if r.stdout != "kept\n" {
			t.Errorf("ssh over the qemu+ssh URI: %q", r.stdout)
		}
		// ssh's exit status comes back through bcvk.
		if r := e.lv(5*time.Minute, "ssh", vmA, "--", "exit", "3"); r.code != 3 {
			t.Errorf("ssh -- exit 3: exit %d\n%s", r.code, r.stderr)
		}
		inspect := e.lvOK(time.Minute, "inspect", "--json", vmA)
		var v struct {
			Meta struct{ SSHPort int } `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(inspect.stdout), &v); err != nil || v.Meta.SSHPort == 0 {
			t.Fatalf("inspect --json: %v\n%s", err, inspect.stdout)
		}
		// The connection to the VM's port went through the SSH host (a
		// direct-tcpip channel of the libvirt connection's sshd).
		if want := fmt.Sprintf("127.0.0.1 port %d", v.Meta.SSHPort); !strings.Contains(e.sshdLog.String(), want) {
			t.Errorf("the test sshd did not forward to the VM's SSH port (%q):\n%s", want, tailLines(e.sshdLog.String(), 30))
		}
	})

	t.Run("port", func(t *testing.T) {
		e.t = t
		e.lvOK(2*time.Minute, "ssh", vmA, "--", "systemd-run", "--unit", "bcvk-test-web", "python3", "-m", "http.server", "8080", "--directory", "/var/data")
		url := fmt.Sprintf("http://127.0.0.1:%d/out", webPort)
		var body string
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			resp, err := http.Get(url)
			if err == nil {
				var b bytes.Buffer
				_, _ = b.ReadFrom(resp.Body)
				resp.Body.Close()
				body = b.String()
				if resp.StatusCode == 200 {
					break
				}
			}
			time.Sleep(time.Second)
		}
		if body != "from-guest\n" {
			t.Errorf("GET %s through --port: %q", url, body)
		}
	})

	t.Run("list", func(t *testing.T) {
		e.t = t
		r := e.lvOK(time.Minute, "list", "--json")
		var list []struct {
			Name  string `json:"name"`
			State string `json:"state"`
			Meta  struct {
				Image   string            `json:"image"`
				Digest  string            `json:"digest"`
				SSHPort int               `json:"sshPort"`
				Labels  map[string]string `json:"labels"`
			} `json:"metadata"`
			SSH struct {
				KeyPath string   `json:"keyPath"`
				Command []string `json:"command"`
			} `json:"ssh"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
			t.Fatalf("list --json: %v\n%s", err, r.stdout)
		}
		found := false
		for _, v := range list {
			if v.Name == foreign {
				t.Errorf("list shows %s, a domain bcvk did not make", foreign)
			}
			if v.Name != vmA {
				continue
			}
			found = true
			if v.State != "running" || v.Meta.Image != bootcImage() || v.Meta.Digest != inspectImage(t, bootcImage(), "{{.Digest}}") ||
				v.Meta.SSHPort == 0 || v.Meta.Labels["bcvk-test"] == "" || !strings.HasPrefix(v.SSH.KeyPath, e.keysDir) {
				t.Errorf("list --json for %s: %+v", vmA, v)
			}
			if fi, err := os.Stat(v.SSH.KeyPath); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("the private key %s: %v (want mode 0600)", v.SSH.KeyPath, err)
			}
		}
		if !found {
			t.Errorf("list --json lacks %s:\n%s", vmA, r.stdout)
		}
		// The private key never reaches the domain XML.
		x := virsh(t, "dumpxml", vmA)
		if strings.Contains(x, "PRIVATE KEY") || !strings.Contains(x, "https://github.com/bcvk/bcvk/libvirt/1") {
			t.Errorf("domain XML: want bcvk's metadata and no private key:\n%s", x)
		}
	})

	t.Run("stop-start", func(t *testing.T) {
		e.t = t
		e.lvOK(5*time.Minute, "stop", vmA)
		if st := strings.TrimSpace(virsh(t, "domstate", vmA)); st != "shut off" {
			t.Errorf("after stop: domain state %q", st)
		}
		if r := e.lv(time.Minute, "ssh", vmA, "--", "true"); r.code == 0 || !strings.Contains(r.stderr, "start it first") {
			t.Errorf("ssh to a stopped VM: exit %d, want a clear error:\n%s", r.code, r.stderr)
		}
		e.lvOK(time.Minute, "start", vmA)
		r := e.lvOK(libvirtTimeout, "ssh", vmA, "--", "cat", "/var/kept")
		if r.stdout != "kept\n" {
			t.Errorf("the file written before stop, after start: %q", r.stdout)
		}
	})

	t.Run("second-vm-shares-base", func(t *testing.T) {
		e.t = t
		// The default --accel auto, with a state directory that knows
		// nothing of this host's KVM: TCG where libvirt offers no KVM; where
		// it offers KVM that hangs (nested KVM), bcvk sees no kernel on the
		// console and goes to TCG. Either way the VM must come up.
		// And BIOS (the default) on the base that VM A booted with UEFI.
		// With the VM options: u1.medium's 4G with 2 vCPUs by --vcpus (it
		// wins), a read-write and a read-only disk file, and swap.
		disks := diskFiles(t)
		probe := `cat /etc/os-release; test -d /sys/firmware/efi && echo efi=yes || echo efi=no; ` +
			`echo "state=$(systemctl is-system-running --wait)"; echo "nproc=$(nproc)"; echo "memkb=$(awk '/MemTotal/{print $2}' /proc/meminfo)"; ` +
			`for n in scratch data; do echo "disk-$n=$(lsblk -dno SERIAL,RO /dev/disk/by-id/virtio-$n | tr -s ' ')"; done; ` +
			`echo guest-wrote | dd of=/dev/disk/by-id/virtio-scratch conv=notrunc status=none && echo scratch-written; ` +
			`echo x | dd of=/dev/disk/by-id/virtio-data conv=notrunc status=none 2>/dev/null && echo data-writable || echo data-refused; ` +
			`echo "swapdev=$(readlink -f /dev/disk/by-id/virtio-bcvk-swap)"; echo "swaps=$(swapon --show=NAME --noheadings | tr '\n' ' ')"`
		r := runBcvk(t, t.TempDir(), nil, libvirtTimeout, "libvirt", "--pool", e.pool, "--connect", e.sshURI, "run", "--name", vmB,
			"--karg", "bcvk.test=libvirt", "--label", label, "--itype", "u1.medium", "--vcpus", "2",
			"--mount-disk-file", disks.scratch+":scratch", "--mount-disk-file", disks.data+":data:raw:ro", "--add-swap", "256M",
			"--ssh", bootcImage(), "--", "sh", "-c", probe)
		if r.code != 0 || strings.Contains(r.stderr, "making one") || !strings.Contains(r.stdout, "Debian") || !strings.Contains(r.stdout, "efi=no") {
			t.Fatalf("VM B: exit %d; want the existing base reused, booted with BIOS, and a shell:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		out := r.stdout
		t.Logf("VM B:\n%s", out)
		if !strings.Contains(out, "nproc=2\n") {
			t.Errorf("--itype u1.medium --vcpus 2: want 2 vCPUs (--vcpus wins):\n%s", out)
		}
		if kb := lineValue(out, "memkb"); kb < 3<<20 {
			t.Errorf("--itype u1.medium: want about 4G of memory, the guest has %d kB", kb)
		}
		if !strings.Contains(out, "disk-scratch=scratch 0\n") || !strings.Contains(out, "disk-data=data 1\n") ||
			!strings.Contains(out, "scratch-written") || !strings.Contains(out, "data-refused") {
			t.Errorf("disk files: want scratch read-write and data read-only, by serial:\n%s", out)
		}
		if dev := lineString(out, "swapdev"); !strings.HasPrefix(dev, "/dev/vd") || !strings.Contains(lineString(out, "swaps"), dev) {
			t.Errorf("--add-swap: want the swap disk active (swapon --show):\n%s", out)
		}
		// The swap volume is in the pool, sparse.
		info := virsh(t, "vol-info", "--bytes", "--pool", e.pool, "bcvk-swap-"+vmB+".img")
		if alloc := lineValue(strings.ReplaceAll(info, ":", "="), "Allocation"); alloc < 0 || alloc > 16<<20 {
			t.Errorf("the swap volume is not sparse:\n%s", info)
		}
		// libvirt's dynamic_ownership: the files are its QEMU user's while
		// the VM runs (docs/libvirt.md says what happens after).
		t.Logf("disk files while VM B runs: scratch owned by %d, data by %d", ownerOf(t, disks.scratch), ownerOf(t, disks.data))
		x := virsh(t, "dumpxml", vmB)
		if strings.Contains(r.stderr, "KVM did not boot") && !strings.Contains(x, "<domain type='qemu'") {
			t.Errorf("after the KVM fallback, VM B's domain is not of type qemu:\n%.300s", x)
		}
		t.Logf("VM B's accelerator: %.60s", x)
		b := e.lvOK(time.Minute, "base-disks", "list", "--json")
		var bases []struct {
			Name   string   `json:"name"`
			UsedBy []string `json:"usedBy"`
		}
		if err := json.Unmarshal([]byte(b.stdout), &bases); err != nil {
			t.Fatalf("base-disks list --json: %v\n%s", err, b.stdout)
		}
		if len(bases) != 1 || strings.Join(bases[0].UsedBy, ",") != vmA+","+vmB {
			t.Errorf("base-disks: want one base used by %s and %s:\n%s", vmA, vmB, b.stdout)
		}
		e.lvOK(2*time.Minute, "--connect", e.sshURI, "rm", "-f", vmB)
		assertVMGone(t, e, vmB)
		// The user's files stay, with what the guest wrote; the swap goes.
		if b, err := os.ReadFile(disks.scratch); err != nil || !bytes.HasPrefix(b, []byte("guest-wrote\n")) {
			t.Errorf("after rm the disk file %s: %.20q, %v; want it kept with the guest's write", disks.scratch, b, err)
		}
		if _, err := os.Stat(disks.data); err != nil {
			t.Errorf("after rm the read-only disk file: %v", err)
		}
		t.Logf("disk files after rm: scratch owned by %d, data by %d (%d before)", ownerOf(t, disks.scratch), ownerOf(t, disks.data), diskFileOwner)
	})

	t.Run("rm", func(t *testing.T) {
		e.t = t
		if r := e.lv(time.Minute, "--connect", e.tcpURI, "rm", vmA); r.code == 0 || !strings.Contains(r.stderr, "-f") {
			t.Errorf("rm of a running VM without -f: exit %d:\n%s", r.code, r.stderr)
		}
		e.lvOK(2*time.Minute, "--connect", e.tcpURI, "rm", "-f", vmA)
		assertVMGone(t, e, vmA)
		// rm-all never touches a domain bcvk did not make.
		e.lvOK(time.Minute, "rm-all", "-f")
		if _, err := virshTry("dominfo", foreign); err != nil {
			t.Errorf("rm-all removed %s, a domain bcvk did not make", foreign)
		}
		// The base stays until pruned.
		if r := e.lvOK(time.Minute, "base-disks", "prune"); !strings.Contains(r.stdout, "bcvk-base-") {
			t.Errorf("base-disks prune: %q", r.stdout)
		}
		if vols := virsh(t, "vol-list", e.pool); strings.Contains(vols, "bcvk-") {
			t.Errorf("after rm and prune the pool still has:\n%s", vols)
		}
	})
}

// diskFileOwner owns the test's disk files, to see what libvirt does to it.
const diskFileOwner = 4321

type testDisks struct{ scratch, data string }

// diskFiles makes two 16 MiB raw files in a directory libvirt's QEMU user
// can enter (t.TempDir's are 0700).
func diskFiles(t *testing.T) testDisks {
	t.Helper()
	dir, err := os.MkdirTemp("", "bcvk-test-disks-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := testDisks{scratch: filepath.Join(dir, "scratch.img"), data: filepath.Join(dir, "data.img")}
	for _, f := range []string{d.scratch, d.data} {
		if err := os.WriteFile(f, make([]byte, 16<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(f, diskFileOwner, diskFileOwner); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func ownerOf(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("%v", err)
		return -1
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}

// lineString is what follows "key=" on its line, trimmed.
func lineString(out, key string) string {
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// lineValue is the number that starts lineString, or -1.
func lineValue(out, key string) int64 {
	n, err := strconv.ParseInt(strings.Fields(lineString(out, key) + " x")[0], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// assertVMGone: no domain, no clone, no key.
func assertVMGone(t *testing.T, e *libvirtEnv, name string) {
	t.Helper()
	if _, err := virshTry("dominfo", name); err == nil {
		t.Errorf("domain %s is still defined", name)
	}
	if vols := virsh(t, "vol-list", e.pool); strings.Contains(vols, "bcvk-vm-"+name) || strings.Contains(vols, "bcvk-swap-"+name) {
		t.Errorf("the clone or swap volume of %s is still in the pool:\n%s", name, vols)
	}
	keys, _ := filepath.Glob(filepath.Join(e.keysDir, "bcvk", "libvirt", "keys", "*"))
	for _, k := range keys {
		b, _ := os.ReadFile(filepath.Join(k, "id_ed25519.pub"))
		if strings.Contains(string(b), "bcvk-libvirt-"+name) {
			t.Errorf("the key of %s is still in %s", name, k)
		}
	}
}

// libvirtBadInput: each a clear error, and nothing left.
func libvirtBadInput(t *testing.T, e *libvirtEnv) {
	e.t = t
	domsBefore := virsh(t, "list", "--all", "--name")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--connect", "qemu+tls://127.0.0.1/system", "list"}, 2, "not supported by bcvk"},
		{[]string{"--connect", "xen:///system", "list"}, 2, "qemu"},
		{[]string{"--connect", "qemu:///system?socket=/nonexistent/libvirt-sock", "list"}, 1, "no libvirt daemon at /nonexistent/libvirt-sock"},
		{[]string{"--connect", "qemu+tcp://127.0.0.1:1/system", "list"}, 1, "is libvirtd running"},
		{[]string{"run", "--port", "80", bootcImage()}, 2, "HOST_PORT:GUEST_PORT"},
		{[]string{"run", "--firmware", "coreboot", bootcImage()}, 2, "--firmware"},
		{[]string{"run", "--itype", "u9.huge", bootcImage()}, 2, "u1.small"},
		// Disk files are this machine's: a remote libvirt host is refused.
		{[]string{"--connect", "qemu+ssh://root@bcvk-remote.invalid/system", "run", "--mount-disk-file", "/etc/hostname", bootcImage()}, 2, "must be on the libvirt host"},
		{[]string{"run", "--mount-disk-file", "/nonexistent/bcvk-test.img", bootcImage()}, 2, "no such file"},
		{[]string{"run", "--add-swap", "1k", bootcImage()}, 2, "between 1M and 1T"},
		{[]string{"ssh", "bcvk-test-nosuchvm"}, 1, "no such bcvk VM"},
		{[]string{"rm", "bcvk-test-nosuchvm"}, 1, "no such bcvk VM"},
	} {
		r := e.lv(time.Minute, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("libvirt %s: exit %d, want %d with %q:\n%s", strings.Join(c.args, " "), r.code, c.code, c.want, r.stderr)
		}
	}
	// An image that is not bootc (no kernel): to-disk fails; no domain,
	// no volume, no key.
	r := e.lv(10*time.Minute, "run", "--accel", "tcg", "--name", "bcvk-test-nokernel", noKernelImage())
	if r.code == 0 || !strings.Contains(r.stderr, "making the base disk") {
		t.Errorf("libvirt run of an image without a kernel: exit %d:\n%s", r.code, r.stderr)
	}
	// Neither does the stopped one: ssh to a VM bcvk did not make.
	if after := virsh(t, "list", "--all", "--name"); after != domsBefore {
		t.Errorf("bad input changed the domains:\n%s\nthen:\n%s", domsBefore, after)
	}
	// The pool is made only when a base goes into it.
	if out, err := virshTry("pool-info", e.pool); err == nil {
		t.Errorf("bad input left the pool %s:\n%s", e.pool, out)
	}
	if keys, _ := filepath.Glob(filepath.Join(e.keysDir, "bcvk", "libvirt", "keys", "*")); len(keys) > 0 {
		t.Errorf("bad input left keys: %v", keys)
	}
	if dirs, _ := filepath.Glob(filepath.Join(sharedCache, "bcvk", "libvirt", "base-*")); len(dirs) > 0 {
		t.Errorf("bad input left work directories: %v", dirs)
	}
	assertNoToDiskContainers(t)
}

func freeLocalPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tailLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
