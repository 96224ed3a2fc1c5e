package tests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// registry is Debian's docker-registry serving TLS on loopback with a
// certificate from a CA made for the test.
type registry struct {
	addr   string // 127.0.0.1:PORT
	caFile string
}

func startRegistry(t *testing.T) *registry {
	t.Helper()
	for _, c := range []string{"docker-registry", "openssl"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s is not installed: run `make deps`", c)
		}
	}
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ca, caKey := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	crt, key, csr := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "server.csr")
	ext := filepath.Join(dir, "ext.cnf")
	run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bcvk test CA",
		"-keyout", caKey, "-out", ca)
	run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr)
	if err := os.WriteFile(ext, []byte("subjectAltName=IP:127.0.0.1,DNS:localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-days", "2",
		"-extfile", ext, "-out", crt)

	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(ca); err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("reading the test CA: %v", err)
	}
	// The registry cannot take a listening socket from us, so it binds a
	// port we name: one that was free a moment ago. Another process may
	// take it in between; then the registry exits (or someone else
	// answers, which the TLS check with our CA tells apart), and we try
	// another.
	for attempt := 1; ; attempt++ {
		addr, err := startRegistryOn(t, dir, crt, key, pool)
		if err == nil {
			return &registry{addr: addr, caFile: ca}
		}
		if attempt == 5 {
			t.Fatalf("the registry did not start: %v", err)
		}
		t.Logf("registry attempt %d: %v; trying another port", attempt, err)
	}
}

// startRegistryOn starts the registry on a port that was just free and
// waits until it serves TLS with our certificate.
func startRegistryOn(t *testing.T, dir, crt, key string, pool *x509.CertPool) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
  tls:
    certificate: %s
    key: %s
`, filepath.Join(dir, "data"), addr, crt, key)), 0o644); err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "docker-registry", "serve", cfg)
	cmd.Stdout, cmd.Stderr = testLog{t}, testLog{t}
	if err := cmd.Start(); err != nil {
		cancel()
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() { cancel(); <-exited }
	wait, cancelWait := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelWait()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err == nil {
			c.Close()
			t.Cleanup(stop)
			return addr, nil
		}
		select {
		case err := <-exited:
			cancel()
			return "", fmt.Errorf("the registry on %s exited: %v", addr, err)
		case <-wait.Done():
			stop()
			return "", fmt.Errorf("the registry did not serve TLS on %s: %v", addr, err)
		case <-tick.C:
		}
	}
}

// trustCA makes podman trust the registry's CA (certs.d, as a user would).
func (r *registry) trustCA(t *testing.T) {
	t.Helper()
	dir := filepath.Join("/etc/containers/certs.d", r.addr)
	if os.Getuid() != 0 {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config/containers/certs.d", r.addr)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b, err := os.ReadFile(r.caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func rmi(ref string) { _ = exec.Command("podman", "rmi", "--force", "--ignore", ref).Run() }

// pushSample puts the sample image in the registry as tag and makes sure
// it is not in local storage, so that bcvk has to pull it.
func (r *registry) pushSample(t *testing.T, tag string) string {
	t.Helper()
	ref := r.addr + "/bcvk/sample:" + tag
	if out, err := exec.Command("podman", "push", "--quiet", "--tls-verify=false", sampleImage(), ref).CombinedOutput(); err != nil {
		t.Fatalf("pushing the sample image: %v\n%s", err, out)
	}
	rmi(ref)
	t.Cleanup(func() { rmi(ref) })
	return ref
}

// Images not in local storage are pulled, with TLS verification on: an
// untrusted certificate fails with a clear error; with the CA trusted the
// image is pulled and boots.
func TestPullFromTLSRegistry(t *testing.T) {
	needPodman(t)
	reg := startRegistry(t)
	ref := reg.pushSample(t, "test")
	name := "bcvk-test-pull"
	cleanupContainer(t, name)

	r := runBcvk(t, sharedState, nil, 2*time.Minute, "ephemeral", "run-ssh", "--name", name, ref, "--", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "pulling "+ref) || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("untrusted registry: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	assertNothingLeft(t, name, sharedState)

	reg.trustCA(t)
	// The pull is under test, not the boot: the pulled image is the sample
	// (same image ID), so the shared saved VM serves.
	r = runBcvk(t, sharedState, nil, bootTimeout, append(append([]string{"ephemeral", "run-ssh"}, warmArgs...), "--name", name, ref, "--", "cat", "/etc/os-release")...)
	if r.code != 0 || !strings.Contains(r.stdout, "Debian") {
		t.Fatalf("trusted registry: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "Pulling "+ref) {
		t.Errorf("no pull step shown:\n%s", r.stderr)
	}
	assertNothingLeft(t, name, sharedState)
}

// The opt-out of TLS verification pulls from a registry whose certificate
// is not trusted. Only the pull is checked: the boot is the same as above.
func TestPullTLSOptOut(t *testing.T) {
	needPodman(t)
	reg := startRegistry(t)
	ref := reg.pushSample(t, "optout")
	name := "bcvk-test-optout"
	cleanupContainer(t, name)
	// --execute with a command that ends at once: pull, boot, run, remove.
	r := runBcvk(t, sharedState, nil, bootTimeout, "ephemeral", "run", "--name", name, "--tls-verify=false",
		"--execute", "test -e /usr/lib/os-release", ref)
	if r.code != 0 {
		t.Fatalf("--tls-verify=false: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if err := exec.Command("podman", "image", "exists", ref).Run(); err != nil {
		t.Error("the image was not pulled")
	}
	assertNothingLeft(t, name, sharedState)
}
