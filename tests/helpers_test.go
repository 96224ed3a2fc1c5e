// Package tests holds bcvk's integration tests: they boot real VMs from real
// images under real podman, QEMU and virtiofsd. They need root or rootless
// podman, the runner image and the sample images (make images), and are
// skipped with -short.
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// env returns a setting for the tests, with a default.
func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func bcvkBinary(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(env("BCVK", "../bin/bcvk"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("bcvk binary %s not found: run `make build` or set BCVK", p)
	}
	return p
}

func sampleImage() string   { return env("BCVK_SAMPLE_IMAGE", "localhost/bcvk-sample:latest") }
func noKernelImage() string { return env("BCVK_NOKERNEL_IMAGE", "localhost/bcvk-test-nokernel:latest") }

// needPodman skips in -short mode and fails when the setup is missing.
func needPodman(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: boots real VMs")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman is not installed: run `make deps`")
	}
	for _, img := range []string{sampleImage()} {
		if err := exec.Command("podman", "image", "exists", img).Run(); err != nil {
			t.Fatalf("image %s is missing: run `make images`", img)
		}
	}
}

// result of one bcvk run.
type result struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

// sharedState is XDG_RUNTIME_DIR for every bcvk run of the tests: private to
// this test binary, so leftovers are easy to see, and shared so that the
// KVM verdict of the first boot spares the others the KVM attempt.
var sharedState string

// sharedCache is XDG_CACHE_HOME for the tests that do not set their own: the
// tests whose subject is not the boot (faults under a running command) run
// with --warm and restore one VM saved by the first of them (warmArgs).
var sharedCache string

// warmArgs are the VM options of every test that restores the shared saved
// VM: the same options, so the same saved VM.
var warmArgs = []string{"--warm", "--memory", "1G"}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bcvk-tests-")
	if err != nil {
		panic(err)
	}
	cache, err := os.MkdirTemp("", "bcvk-tests-cache-")
	if err != nil {
		panic(err)
	}
	sharedState, sharedCache = dir, cache
	removeEarlierRuns()
	code := m.Run()
	os.RemoveAll(dir)
	os.RemoveAll(cache)
	os.Exit(code)
}

// removeEarlierRuns removes VM containers that an earlier, killed run of
// this suite left: their state directory was one of the suite's temporary
// directories and is gone. bcvk itself leaves them alone (their owner is
// not provably dead from here: another state base), and the suite's checks
// for leftovers would blame the first test that looks. A user's own VMs are
// never touched.
func removeEarlierRuns() {
	out, err := exec.Command("podman", "ps", "--all", "--format", "{{.ID}} {{index .Labels \"bcvk.state-dir\"}}",
		"--filter", "label=bcvk.state-dir").Output()
	if err != nil {
		return // no podman: the tests that need it say so
	}
	prefix := filepath.Join(os.TempDir(), "bcvk-tests-")
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 || !strings.HasPrefix(f[1], prefix) {
			continue
		}
		if _, err := os.Stat(f[1]); !os.IsNotExist(err) {
			continue // a run of the suite that is still going
		}
		fmt.Fprintf(os.Stderr, "tests: removing container %s, left by an earlier test run (%s)\n", f[0], f[1])
		_ = exec.Command("podman", "rm", "--force", "--time", "0", f[0]).Run()
	}
}

// bcvkCmd prepares a bcvk run with XDG_RUNTIME_DIR set to stateDir.
func bcvkCmd(t *testing.T, stateDir string, stdin io.Reader, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bcvkBinary(t), args...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+stateDir)
	if os.Getenv("XDG_CACHE_HOME") == "" { // a test's own (t.Setenv) wins
		cmd.Env = append(cmd.Env, "XDG_CACHE_HOME="+sharedCache)
	}
	var out, errb bytes.Buffer
	cmd.Stdin = stdin
	// A killed bcvk can leave a child holding our pipes (a `podman exec`
	// that ends with its container): do not wait for them for ever.
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdout = &out
	cmd.Stderr = io.MultiWriter(&errb, testLog{t})
	return cmd, &out, &errb
}

// runBcvk runs bcvk to the end, bounded by timeout.
func runBcvk(t *testing.T, stateDir string, stdin io.Reader, timeout time.Duration, args ...string) result {
	t.Helper()
	r, err := tryBcvk(t, stateDir, stdin, timeout, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryBcvk is runBcvk for goroutines, which must not call t.Fatal.
func tryBcvk(t *testing.T, stateDir string, stdin io.Reader, timeout time.Duration, args ...string) (result, error) {
	cmd, out, errb := bcvkCmd(t, stateDir, stdin, args...)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		return result{}, fmt.Errorf("bcvk %s did not finish within %s", strings.Join(args, " "), timeout)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}, nil
}

// testLog streams bcvk's progress into the test log as it happens.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("bcvk: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// containersNamed lists podman containers (any state) with our name label.
func containersNamed(t *testing.T, name string) []string {
	t.Helper()
	out, err := exec.Command("podman", "ps", "--all", "--format", "json", "--filter", "label=bcvk.name="+name).Output()
	if err != nil {
		t.Fatalf("podman ps: %v", err)
	}
	var cs []struct{ Names []string }
	if err := json.Unmarshal(out, &cs); err != nil {
		t.Fatalf("podman ps output: %v", err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Names...)
	}
	return names
}

// assertNothingLeft checks that no container with name and no VM state
// directory remain.
func assertNothingLeft(t *testing.T, name, stateDir string) {
	t.Helper()
	if cs := containersNamed(t, name); len(cs) > 0 {
		t.Errorf("containers left behind: %v", cs)
		_ = exec.Command("podman", "rm", "-f", "-t", "0", name).Run()
	}
	entries, _ := os.ReadDir(filepath.Join(stateDir, "bcvk"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), name+"-") {
			t.Errorf("state directory left behind: %s", filepath.Join(stateDir, "bcvk", e.Name()))
		}
	}
}

// cleanupContainer removes the container if a failed test left it.
func cleanupContainer(t *testing.T, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = exec.CommandContext(ctx, "podman", "rm", "-f", "-t", "0", "--ignore", name).Run()
	})
}

// waitUntil polls cond until it holds. It fails the test when done delivers
// first (the process under test ended) or timeout passes; describe says
// what was awaited and what to show.
func waitUntil(t *testing.T, done <-chan error, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if cond() {
				return
			}
		case err := <-done:
			t.Fatalf("ended before %s: %v", describe(), err)
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", timeout, describe())
		}
	}
}

// guestField returns the value of the line KEY=VALUE that a guest script
// printed in out, and fails the test when there is none.
func guestField(t *testing.T, out, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `=(.*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Errorf("guest did not report %s; output:\n%s", key, out)
		return ""
	}
	return strings.TrimSpace(m[1])
}
