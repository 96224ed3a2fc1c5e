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
			"sh", "-c", "echo marker=$(cat /root/warm-marker 2>/dev/null || echo none); date +%s; touch /root/warm-marker-new; echo >/root/warm-marker")
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
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	second := run()
	t.Logf("cold run with save %s, warm run %s", first.elapsed.Round(time.Millisecond), second.elapsed.Round(time.Millisecond))
	if second.code != 0 || !strings.Contains(second.stderr, "Restoring the saved VM") || strings.Contains(second.stderr, "Starting systemd") {
		t.Fatalf("second --warm run did not restore: exit %d\n%s", second.code, second.stderr)
	}
	lines := strings.Split(strings.TrimSpace(second.stdout), "\n")
	// The first run's changes came after the save: the restored VM is the
	// saved one, not the first run's end state.
	if len(lines) != 2 || lines[0] != "marker=none" {
		t.Errorf("restored VM: stdout %q", second.stdout)
	}
	if len(lines) == 2 {
		guest, _ := strconv.ParseInt(lines[1], 10, 64)
		if d := time.Now().Unix() - guest; d < -5 || d > 30 {
			t.Errorf("the restored guest's clock is off by %d s", d)
		}
	}
}
