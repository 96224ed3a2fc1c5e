package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWarmStart: the first --warm run boots and saves the VM, the second
// restores it, with its own key and the right time.
func TestWarmStart(t *testing.T) {
	needPodman(t)
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	run := func() result {
		return runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "run-ssh", "--warm", sampleImage(), "--",
			"sh", "-c", "echo marker=$(cat /root/warm-marker 2>/dev/null || echo none); date +%s; "+
				"echo keys=$(grep -c . /run/bcvk/ssh/authorized_keys.root) restore-key=$(grep -c bcvk-warm-restore /run/bcvk/ssh/authorized_keys.root)"+
				" vmgenid=$(ls /sys/bus/platform/drivers/vmgenid /sys/bus/acpi/drivers/vmgenid 2>/dev/null | grep -c VGID); "+
				"touch /root/warm-marker-new; echo >/root/warm-marker")
	}
	first := run()
	if first.code != 0 || !strings.Contains(first.stderr, "Starting systemd") || !strings.HasPrefix(first.stdout, "marker=none\n") {
		t.Fatalf("first --warm run: exit %d stdout %q\n%s", first.code, first.stdout, first.stderr)
	}
	entries, _ := filepath.Glob(filepath.Join(cache, "bcvk", "warm", "*", "meta.json"))
	if len(entries) != 1 {
		t.Fatalf("no saved VM after the first run: %v", entries)
	}
	dir := filepath.Dir(entries[0])
	for p, want := range map[string]os.FileMode{filepath.Dir(dir): 0o700, filepath.Join(dir, "ssh_key"): 0o600} {
		if fi, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	secondStart := time.Now()
	second := run()
	secondEnd := time.Now()
	t.Logf("cold run with save %s, warm run %s", first.elapsed.Round(time.Millisecond), second.elapsed.Round(time.Millisecond))
	if second.code != 0 || !strings.Contains(second.stderr, "Restoring the saved VM") || strings.Contains(second.stderr, "Starting systemd") {
		t.Fatalf("second --warm run did not restore: exit %d\n%s", second.code, second.stderr)
	}
	// run-ssh's command words are the guest's, never ssh's options (a
	// ProxyCommand would run in the runner); a warm restore makes it cheap.
	for _, word := range []string{"-v", "-oProxyCommand=sh -c 'echo PWN\"\"ED >&2'"} {
		r := runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "run-ssh", "--warm", sampleImage(), "--", word)
		if r.code != 127 || !strings.Contains(r.stderr, ": command not found") || strings.Contains(r.stderr, "PWNED") {
			t.Errorf("run-ssh -- %q: exit %d, stderr %q", word, r.code, r.stderr)
		}
	}
	lines := strings.Split(strings.TrimSpace(second.stdout), "\n")
	// The first run's changes came after the save: the restored VM is the
	// saved one, not the first run's end state.
	if len(lines) != 3 || lines[0] != "marker=none" {
		t.Errorf("restored VM: stdout %q", second.stdout)
	}
	// Each VM accepts only its own key (the save's restore key is gone and
	// no earlier run's key is there), and has a VM generation ID device,
	// on which the restored kernel reseeds its RNG.
	for _, out := range []string{first.stdout, second.stdout} {
		if !strings.Contains(out, "\nkeys=1 restore-key=0 vmgenid=1\n") {
			t.Errorf("keys and vmgenid: %q", out)
		}
	}
	if pub, err := os.ReadFile(filepath.Join(dir, "ssh_key.pub")); err != nil || !strings.Contains(string(pub), "bcvk-warm-restore") {
		t.Errorf("the saved VM's key is not a restore key of its own: %q %v", pub, err)
	}
	if len(lines) == 3 {
		// The guest's clock was read during the second run: it must fall
		// within that run (with a little slack for rounding).
		guest, _ := strconv.ParseInt(lines[1], 10, 64)
		if guest < secondStart.Unix()-2 || guest > secondEnd.Unix()+2 {
			t.Errorf("the restored guest's clock said %d, outside the run (%d to %d)", guest, secondStart.Unix(), secondEnd.Unix())
		}
	}
	// rm-all --warm-cache drops the saved VMs.
	if r := runBcvk(t, sharedState, nil, time.Minute, "ephemeral", "rm-all", "-f", "--warm-cache"); r.code != 0 || !strings.Contains(r.stderr, "Removed 1 saved VM") {
		t.Errorf("rm-all --warm-cache: exit %d, %q", r.code, r.stderr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the saved VM is still there after rm-all --warm-cache: %v", err)
	}
}
