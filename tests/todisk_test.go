package tests

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bcvk/bcvk/pkg/credential"
	"github.com/bcvk/bcvk/pkg/sshkey"
)

const toDiskTimeout = 15 * time.Minute

// TestToDisk makes a raw disk from the sample image with its bootc (a test
// fixture, see hack/test-fixture-bootc.sh), boots it from the disk alone
// (SeaBIOS), checks reuse, regeneration and dry runs. The qcow2 disk of the
// bootc-layout image, booted with UEFI, is TestLibvirt's base disk: the
// same checks run there on the libvirt VM.
func TestToDisk(t *testing.T) {
	needPodman(t)
	t.Run("disks", func(t *testing.T) {
		t.Run("raw", func(t *testing.T) { toDiskRaw(t) })
	})
	assertNoToDiskContainers(t)
}

// toDiskRaw: a raw disk booted with SeaBIOS, then reuse, dry runs and a
// regeneration.
func toDiskRaw(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "sample.raw")

	r := runBcvk(t, sharedState, nil, toDiskTimeout, "to-disk", "--karg", "bcvk.test=raw1", sampleImage(), raw)
	if r.code != 0 {
		t.Fatalf("to-disk raw: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "bootc (bcvk test fixture)") || !strings.Contains(r.stderr, "Wrote "+raw) {
		t.Errorf("the installer's progress or the summary is missing:\n%s", r.stderr)
	}
	assertOnlyFiles(t, dir, "sample.raw")
	info := qemuImgInfo(t, raw)
	if info.Format != "raw" || info.VirtualSize != 4<<30 {
		t.Errorf("raw disk: qemu-img says format %s, size %d; want raw, 4 GiB (the default for a small image)", info.Format, info.VirtualSize)
	}

	out := bootDisk(t, raw, "raw", false)
	if !strings.Contains(out, "bcvk.test=raw1") || !strings.Contains(out, "root=UUID=") {
		t.Errorf("booted from the raw disk with SeaBIOS, but /proc/cmdline lacks the --karg:\n%s", out)
	}
	if !strings.Contains(out, "state=running") || !strings.Contains(out, "rootfs=ext4") {
		t.Errorf("the disk-booted system is not fully up (want state=running on ext4):\n%s", out)
	}
	assertInstalledFrom(t, out, sampleImage())

	// The same inputs again: reused at once, the file untouched.
	before, _ := os.Stat(raw)
	r = runBcvk(t, sharedState, nil, time.Minute, "to-disk", "--karg", "bcvk.test=raw1", sampleImage(), raw)
	after, _ := os.Stat(raw)
	if r.code != 0 || !strings.Contains(r.stderr, "Reusing "+raw) {
		t.Errorf("second identical run did not reuse: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "Starting container") || strings.Contains(r.stderr, "Booting the kernel") {
		t.Errorf("reuse started an installer VM:\n%s", r.stderr)
	}
	if !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("reuse changed the disk's modification time")
	}
	for _, c := range []struct {
		want string
		args []string
	}{
		{"would-reuse", []string{"--karg", "bcvk.test=raw1"}},
		{"would-regenerate", []string{"--karg", "bcvk.test=raw1", "--disk-size", "5G"}},
		{"would-regenerate", []string{"--karg", "bcvk.test=other"}},
		{"would-regenerate", []string{"--karg", "bcvk.test=raw1", "--format", "qcow2"}},
		{"would-regenerate", []string{"--karg", "bcvk.test=raw1", "--filesystem", "xfs"}},
	} {
		args := append(append([]string{"to-disk", "--dry-run"}, c.args...), sampleImage(), raw)
		r := runBcvk(t, sharedState, nil, time.Minute, args...)
		if r.code != 0 || strings.TrimSpace(r.stdout) != c.want {
			t.Errorf("bcvk %s: exit %d, stdout %q; want %q\n%s", strings.Join(args, " "), r.code, r.stdout, c.want, r.stderr)
		}
	}

	// A new size regenerates; asked over varlink (io.bootc.vk.todisk), so
	// that this one install also checks the API's ToDisk for real.
	v, stop := startVarlink(t)
	rep, verr := v.call(toDiskTimeout, "io.bootc.vk.todisk.ToDisk", map[string]any{"source_image": sampleImage(),
		"target_disk": raw, "disk_size": "5G", "kargs": []string{"bcvk.test=raw1"}})
	if stderr := stop(); verr != "" || rep["path"] != raw || rep["cached"] != false || !strings.Contains(stderr, "Regenerating "+raw+" (changed: disk size)") {
		t.Fatalf("varlink ToDisk with a new size: error %q, reply %v\n%s", verr, rep, stderr)
	}
	// Asked again: the disk is reused, and the reply says so.
	v, stop = startVarlink(t)
	rep = v.ok(time.Minute, "io.bootc.vk.todisk.ToDisk", map[string]any{"source_image": sampleImage(),
		"target_disk": raw, "disk_size": "5G", "kargs": []string{"bcvk.test=raw1"}})
	if stderr := stop(); rep["path"] != raw || rep["cached"] != true {
		t.Errorf("varlink ToDisk of the same inputs: reply %v\n%s", rep, stderr)
	}
	if info := qemuImgInfo(t, raw); info.VirtualSize != 5<<30 {
		t.Errorf("regenerated disk is %d bytes, want 5 GiB", info.VirtualSize)
	}
	assertOnlyFiles(t, dir, "sample.raw")
}

// TestToDiskFailingInstall: the installer fails; bcvk says why and leaves
// nothing behind.
func TestToDiskFailingInstall(t *testing.T) {
	needPodman(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "bad.raw")
	r := runBcvk(t, sharedState, nil, toDiskTimeout, "to-disk", "--filesystem", "nosuchfs", sampleImage(), disk)
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	for _, want := range []string{"bootc install to-disk failed with exit status 1", "unsupported file system 'nosuchfs'"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	assertOnlyFiles(t, dir)
	assertNoToDiskContainers(t)
}

// TestToDiskBadInput: usage errors start nothing and write nothing.
func TestToDiskBadInput(t *testing.T) {
	needPodman(t)
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--format", "vdi", sampleImage(), filepath.Join(dir, "a")}, 2, "unknown disk format \"vdi\""},
		{[]string{"--disk-size", "100M", sampleImage(), filepath.Join(dir, "a.raw")}, 2, "too small"},
		{[]string{"--root-size", "lots", sampleImage(), filepath.Join(dir, "a.raw")}, 2, "--root-size"},
		{[]string{sampleImage(), filepath.Join(dir, "nodir", "a.raw")}, 1, "does not exist"},
		{[]string{sampleImage()}, 2, "needs IMAGE and DISK"},
	} {
		r := runBcvk(t, sharedState, nil, time.Minute, append([]string{"to-disk"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("to-disk %s: exit %d, want %d with %q:\n%s", strings.Join(c.args, " "), r.code, c.code, c.want, r.stderr)
		}
		if strings.Contains(r.stderr, "Starting container") {
			t.Errorf("to-disk %s started a container before failing:\n%s", strings.Join(c.args, " "), r.stderr)
		}
	}
	// A file bcvk did not make is not overwritten.
	foreign := filepath.Join(dir, "mine.raw")
	if err := os.WriteFile(foreign, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBcvk(t, sharedState, nil, time.Minute, "to-disk", sampleImage(), foreign)
	if r.code != 1 || !strings.Contains(r.stderr, "--overwrite") {
		t.Errorf("to-disk onto a foreign file: exit %d\n%s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(foreign); string(b) != "precious" {
		t.Errorf("the foreign file was changed")
	}
	assertOnlyFiles(t, dir, "mine.raw")
	assertNoToDiskContainers(t)
}

func assertOnlyFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s holds %q, want exactly %q (no temporary files)", dir, got, want)
	}
}

func assertNoToDiskContainers(t *testing.T) {
	t.Helper()
	out, err := exec.Command("podman", "ps", "--all", "--format", "{{.Names}} ({{.Status}}, state {{index .Labels \"bcvk.state-dir\"}}, owner {{index .Labels \"bcvk.owner\"}})", "--filter", "label=bcvk.to-disk").Output()
	if err != nil {
		t.Fatalf("podman ps: %v", err)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("to-disk containers left behind: %s", s)
	}
}

type imgInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
}

// qemuImgInfo asks the runner image's qemu-img (the host has none).
func qemuImgInfo(t *testing.T, path string) imgInfo {
	t.Helper()
	out, err := exec.Command("podman", "run", "--rm", "--pull=never", "--network=none",
		"--mount", "type=bind,source="+filepath.Dir(path)+",destination=/d,ro=true",
		"--entrypoint", "qemu-img", runnerImage(t), "info", "--output=json", "/d/"+filepath.Base(path)).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", path, err)
	}
	var info imgInfo
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("qemu-img info output: %v\n%s", err, out)
	}
	return info
}

// bootScript boots the disk with QEMU alone (no kernel, initramfs or
// virtiofs from bcvk: only the firmware and the disk), waits for SSH with
// the key given by credential, and prints what the test checks.
const bootScript = `
set -u
firmware=
if [ "$EFI" = 1 ]; then
	cp /usr/share/OVMF/OVMF_VARS_4M.fd /tmp/vars.fd
	firmware="-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd -drive if=pflash,format=raw,file=/tmp/vars.fd"
fi
qemu-system-x86_64 -nodefaults -display none -machine q35 -accel tcg -cpu max -m 1536 -smp 2 $firmware \
	-drive file=/d/$DISK,format=$FORMAT,if=virtio,snapshot=on \
	-netdev user,id=n,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=n,romfile= \
	-smbios "type=11,value=$CRED" -serial file:/tmp/console.log &
qemu=$!
cmd='echo "cmdline=$(cat /proc/cmdline)"; echo "state=$(systemctl is-system-running --wait)"; systemctl --failed --no-legend; echo "rootfs=$(findmnt -no FSTYPE /)"; echo "efi=$(test -d /sys/firmware/efi && echo yes || echo no)"; echo "bootc-status=$(bootc status --json 2>&1 | tr -d "\n")"'
for i in $(seq 1 150); do
	kill -0 $qemu 2>/dev/null || { echo "QEMU ended"; break; }
	if ssh -q -i /k/key -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o ConnectTimeout=10 -o BatchMode=yes root@127.0.0.1 "$cmd"; then
		kill $qemu; exit 0
	fi
	sleep 2
done
echo "no SSH; console:"; tail -30 /tmp/console.log; kill $qemu; exit 1
`

// assertInstalledFrom reads `bootc status --json` of the booted disk (from
// bootDisk's output): the installed system must name the image it came
// from, with the digest and ID the host's podman has for it.
func assertInstalledFrom(t *testing.T, out, image string) {
	t.Helper()
	_, line, ok := strings.Cut(out, "bootc-status=")
	line, _, _ = strings.Cut(line, "\n")
	var st struct {
		Status struct {
			Booted struct {
				Image struct {
					Image struct {
						Image     string `json:"image"`
						Transport string `json:"transport"`
					} `json:"image"`
					ImageDigest string `json:"imageDigest"`
					ImageID     string `json:"imageId"`
				} `json:"image"`
			} `json:"booted"`
		} `json:"status"`
	}
	if !ok {
		t.Fatalf("no bootc status from the installed disk:\n%s", out)
	}
	if err := json.Unmarshal([]byte(line), &st); err != nil {
		t.Fatalf("bootc status --json of the installed disk: %v\n%s", err, line)
	}
	got := st.Status.Booted.Image
	digest, id := inspectImage(t, image, "{{.Digest}}"), inspectImage(t, image, "{{.Id}}")
	if got.Image.Image != image || got.ImageDigest != digest || strings.TrimPrefix(got.ImageID, "sha256:") != id {
		t.Errorf("the installed disk says it came from %q (digest %q, ID %q); want %q with the host's digest %s and ID %s",
			got.Image.Image, got.ImageDigest, got.ImageID, image, digest, id)
	}
}

func bootDisk(t *testing.T, path, format string, efi bool) string {
	t.Helper()
	keyDir := t.TempDir()
	key, err := sshkey.Generate("bcvk-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Write(filepath.Join(keyDir, "key")); err != nil {
		t.Fatal(err)
	}
	cred, err := credential.SMBIOS("tmpfiles.extra", []byte(credential.AuthorizedKeyTmpfiles(key.Public, "root")))
	if err != nil {
		t.Fatal(err)
	}
	efiFlag := "0"
	if efi {
		efiFlag = "1"
	}
	name := "bcvk-test-diskboot-" + format
	cleanupContainer(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "podman", "run", "--rm", "--name", name, "--label", "bcvk.test=1", "--pull=never",
		"--mount", "type=bind,source="+filepath.Dir(path)+",destination=/d,ro=true",
		"--mount", "type=bind,source="+keyDir+",destination=/k,ro=true",
		"--env", "DISK="+filepath.Base(path), "--env", "FORMAT="+format, "--env", "EFI="+efiFlag, "--env", "CRED="+cred,
		"--entrypoint", "sh", runnerImage(t), "-c", bootScript)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("disk boot (%s, efi=%v) in %.0fs:\n%s", format, efi, time.Since(start).Seconds(), out)
	if err != nil {
		t.Fatalf("booting %s: %v", path, err)
	}
	return string(out)
}
