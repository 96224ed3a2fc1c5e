package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWarmBind: --warm with --bind and --ro-bind. The saved VM has no
// shares; their devices are hot-plugged and mounted before SSH is ready.
// The guest reads a host file, its write reaches the host, and the
// read-only share refuses writes. It restores the suite's shared saved VM
// (warmArgs); run alone, its first run boots and saves it (the shares then
// come after the save), and a second run restores it.
func TestWarmBind(t *testing.T) {
	needPodman(t)
	rw, ro := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "ro.txt"), []byte("from-the-ro-share\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	name := "bcvk-test-warmbind"
	cleanupContainer(t, name)
	for run := 1; run <= 2; run++ {
		token := "host-token-" + time.Now().Format("150405.000000000")
		if err := os.WriteFile(filepath.Join(rw, "in.txt"), []byte(token+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(filepath.Join(rw, "out.txt"))
		args := append([]string{"ephemeral", "run", "-d", "--name", name, "--timeout", "15m"}, warmArgs...)
		port := freePort(t)
		args = append(args, "--bind", rw+":/mnt/rw", "--ro-bind", ro+":/mnt/ro", "-p", port+":8000", sampleImage())
		r := runBcvk(t, sharedState, nil, 16*time.Minute, args...)
		if r.code != 0 {
			t.Fatalf("run %d: exit %d\n%s", run, r.code, r.stderr)
		}
		restored := strings.Contains(r.stderr, "Restoring the saved VM")
		// Already mounted when the VM is reported ready: no waiting here.
		s := runBcvk(t, sharedState, nil, 3*time.Minute, "ephemeral", "ssh", name, "--", "sh", "-c",
			"echo rw-read=$(cat /mnt/rw/in.txt); echo ro-read=$(cat /mnt/ro/ro.txt); echo guest-wrote >/mnt/rw/out.txt && echo rw-write=ok; "+
				"if touch /mnt/ro/nope 2>/dev/null; then echo ro-write=allowed; else echo ro-write=refused; fi; "+
				"echo ro-opts=$(findmnt -n -o FSTYPE,OPTIONS /mnt/ro | cut -d, -f1)")
		t.Logf("run %d (restored: %v): %q", run, restored, s.stdout)
		for _, want := range []string{"rw-read=" + token, "ro-read=from-the-ro-share", "rw-write=ok", "ro-write=refused", "ro-opts=virtiofs ro"} {
			if !strings.Contains(s.stdout, want+"\n") {
				t.Errorf("run %d: no %q in the guest's output %q (exit %d)\n%s", run, want, s.stdout, s.code, s.stderr)
			}
		}
		// A published port, added to the saved or restored VM's network.
		if r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "ssh", name, "--", "systemd-run", "--unit", "bcvk-test-publish",
			"systemd-socket-activate", "--listen", "0.0.0.0:8000", "--accept", "--inetd", "echo", "published-warm"); r.code != 0 {
			t.Errorf("run %d: starting a service in the guest: exit %d, %s", run, r.code, r.stderr)
		} else if got := readPublished(t, port); got != "published-warm\n" {
			t.Errorf("run %d (restored: %v): -p %s:8000 gave %q", run, restored, port, got)
		}
		if b, err := os.ReadFile(filepath.Join(rw, "out.txt")); err != nil || string(b) != "guest-wrote\n" {
			t.Errorf("run %d: the guest's write on the host: %q %v", run, b, err)
		}
		if _, err := os.Stat(filepath.Join(ro, "nope")); !os.IsNotExist(err) {
			t.Errorf("run %d: the guest wrote into the read-only share: %v", run, err)
		}
		if r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "rm", "-f", name); r.code != 0 {
			t.Fatalf("run %d: rm: exit %d\n%s", run, r.code, r.stderr)
		}
		assertNothingLeft(t, name, sharedState)
		if restored {
			return
		}
		if run == 2 {
			t.Fatalf("the second --warm run did not restore the saved VM:\n%s", r.stderr)
		}
	}
}
